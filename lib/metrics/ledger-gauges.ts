import { Gauge, type Registry } from 'prom-client';
import type { SystemDb } from '../db/pool';
import { UNSETTLED_COUNT_CAP, unsettledReservations } from './unsettled-store';

/** The ledger's unsettled reservations on `registry`; `read()` refreshes them from Postgres. */
export function ledgerGauges(registry: Registry, db: SystemDb): { read(): Promise<void> } {
  const reservations = new Gauge({
    name: 'velro_ledger_unsettled_reservations',
    help: `Reservations not yet committed or released: open (deadline ahead) or overdue (deadline passed in the last day); counted up to ${UNSETTLED_COUNT_CAP}`,
    labelNames: ['state'],
    registers: [registry],
  });
  const credits = new Gauge({
    name: 'velro_ledger_unsettled_credits',
    help: 'Credits held by those reservations',
    labelNames: ['state'],
    registers: [registry],
  });
  return {
    async read() {
      const now = await unsettledReservations(db);
      for (const state of ['open', 'overdue'] as const) {
        reservations.set({ state }, now[state].reservations);
        credits.set({ state }, now[state].credits);
      }
    },
  };
}
