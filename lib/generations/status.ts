// Pure (no imports): workflows/definitions.ts takes the status list and the terminal set from here
// into the workflow bundle, so this file must stay free of imports and side effects.

/** A generation's status, as stored, listed and searched (Temporal's VelroStatus) everywhere. */
export const GENERATION_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type GenerationStatus = (typeof GENERATION_STATUSES)[number];

/** The statuses a generation ends in; it never leaves one. */
export const TERMINAL_STATUSES: ReadonlySet<GenerationStatus> = new Set(['succeeded', 'failed', 'canceled']);

export const isTerminal = (status: GenerationStatus): boolean => TERMINAL_STATUSES.has(status);
