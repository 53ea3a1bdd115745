/** A mistake in how the CLI was called: answered with the usage text and exit code 2. */
export class UsageError extends Error {}

/** Prints `human`, or `json` with --json. */
export type Out = (human: string, json: unknown) => void;
