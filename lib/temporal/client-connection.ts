import { Connection } from '@temporalio/client';

/**
 * The API's and the worker's client connection to Temporal. gRPC's own reconnect backoff grows to
 * 120 s: after Temporal has been down for a few seconds, the channel would wait out a long backoff
 * and every call retried meanwhile would fail, long after the server is back (a submit seen taking
 * more than 20 s in the cluster fault test). Reconnecting every second at most ends that within a
 * second of the server's return.
 */
export function connectTemporalClient(address: string): Promise<Connection> {
  return Connection.connect({
    address,
    connectTimeout: '10 seconds',
    channelArgs: {
      'grpc.initial_reconnect_backoff_ms': 250,
      'grpc.max_reconnect_backoff_ms': 1_000,
    },
  });
}
