import { Gauge, type Registry } from 'prom-client';
import { capacityStats } from '../capacity/store';
import type { Db } from '../db/pool';

/**
 * Provider slots in use and generations waiting for one, by provider and paying account kind, on
 * `registry`; `read()` refreshes them from Postgres (the API and the worker call it at each scrape).
 */
export function capacityGauges(registry: Registry, db: Db, scope: string): { read(): Promise<void> } {
  const labelNames = ['provider', 'account_kind'] as const;
  const slotsInUse = new Gauge({
    name: 'velro_capacity_slots_in_use',
    help: 'Provider jobs in flight (slots held), by provider and paying account kind (user or team)',
    labelNames,
    registers: [registry],
  });
  const waiting = new Gauge({
    name: 'velro_capacity_waiting',
    help: 'Generations waiting for a provider slot, by provider and paying account kind',
    labelNames,
    registers: [registry],
  });
  return {
    async read() {
      const stats = await capacityStats(db, scope);
      slotsInUse.reset();
      waiting.reset();
      for (const s of stats) {
        const labels = { provider: s.provider, account_kind: s.accountKind };
        slotsInUse.set(labels, s.inUse);
        waiting.set(labels, s.waiting);
      }
    },
  };
}
