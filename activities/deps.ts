import type { Db } from '../lib/db/pool';
import type { Provider, ProviderName } from '../lib/providers/provider';
import type { Storage } from '../lib/storage/storage';

export interface ActivityDeps {
  db: Db;
  storage: Storage;
  providers: Record<ProviderName, Provider | undefined>;
  /** Largest output Velro will download from a provider. */
  maxOutputBytes: number;
  /** Time limit for one output download. */
  downloadTimeoutMs: number;
  /** Whether provider output URLs on loopback are accepted (never in production). */
  allowLoopbackOutputs: boolean;
  /** Hosts provider outputs may be downloaded from. */
  outputHosts: string[];
  /** Whether a workflow is still running (the reconciler asks before releasing a reservation). */
  workflowState(workflowId: string): Promise<'running' | 'closed' | 'missing'>;
}
