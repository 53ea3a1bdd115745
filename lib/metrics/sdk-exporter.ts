import { freePort } from '../net/free-port';

/** The Temporal SDK's Prometheus exporter, bound on loopback for the worker's /metrics to relay. */
export interface SdkExporter {
  /** Spread into Runtime.install's telemetryOptions. */
  telemetry: {
    metrics: {
      prometheus: {
        bindAddress: string;
        countersTotalSuffix: boolean;
        unitSuffix: boolean;
        useSecondsForDurations: boolean;
      };
    };
  };
  url: string;
}

export async function sdkExporter(): Promise<SdkExporter> {
  const port = await freePort('127.0.0.1');
  return {
    // Prometheus' conventions: counters end in _total, durations in seconds named so.
    telemetry: {
      metrics: {
        prometheus: {
          bindAddress: `127.0.0.1:${port}`,
          countersTotalSuffix: true,
          unitSuffix: true,
          useSecondsForDurations: true,
        },
      },
    },
    url: `http://127.0.0.1:${port}/metrics`,
  };
}

/** The exporter's text, or an error once `timeoutMs` runs out. */
export async function readSdkMetrics(url: string, timeoutMs: number): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`the SDK's exporter answered ${res.status}`);
  return res.text();
}
