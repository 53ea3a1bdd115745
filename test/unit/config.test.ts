import { describe, expect, it } from 'vitest';
import { activeProvider, ConfigError, loadConfig } from '../../lib/config';

describe('configuration', () => {
  it('runs on embedded defaults with an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ PORT: 3000, NODE_ENV: 'development', STORAGE_DRIVER: 'fs' });
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.TEMPORAL_ADDRESS).toBeUndefined();
    expect(config.dataDir).toMatch(/\.data$/);
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', TEMPORAL_ADDRESS: '  ' }).DATABASE_URL).toBeUndefined();
  });

  it('names the variable of a bad value', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ LOCAL_PROVIDER_FAILURE_RATE: '1.5' })).toThrow(/LOCAL_PROVIDER_FAILURE_RATE/);
    expect(() => loadConfig({ DATABASE_URL: 'not a url' })).toThrow(/DATABASE_URL/);
  });

  it('requires JWT_SECRET in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/JWT_SECRET/);
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40) }).NODE_ENV).toBe('production');
  });

  it('picks the provider: forced, else the first with a key, else local', () => {
    expect(activeProvider(loadConfig({}))).toBe('local');
    expect(activeProvider(loadConfig({ REPLICATE_API_TOKEN: 'r8_x' }))).toBe('replicate');
    expect(activeProvider(loadConfig({ FAL_KEY: 'k', REPLICATE_API_TOKEN: 'r' }))).toBe('fal');
    expect(activeProvider(loadConfig({ FAL_KEY: 'k', VELRO_PROVIDER: 'local' }))).toBe('local');
  });
});
