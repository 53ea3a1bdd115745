import { createServer } from 'node:net';

/** Asks the OS for a currently unused TCP port on `host`. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`could not read a port from ${String(address)}`));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
