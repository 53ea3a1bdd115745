// The model providers Velro can send a generation to. Pure (no imports): workflow code, the config
// schema and the provider wiring all take the list from here.

export const PROVIDER_NAMES = ['local', 'fal', 'replicate'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];
