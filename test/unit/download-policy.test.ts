import { describe, expect, it } from 'vitest';
import { checkOutputUrl, DownloadRefused } from '../../lib/providers/download';

const policy = { allowedHosts: ['.fal.media', 'replicate.delivery'], allowLoopback: false, timeoutMs: 1000 };

describe('which provider output URLs are fetched', () => {
  it('accepts https from known hosts', () => {
    expect(checkOutputUrl('https://v3.fal.media/files/a.png', policy).hostname).toBe('v3.fal.media');
    expect(checkOutputUrl('https://replicate.delivery/x/out.webp', policy).hostname).toBe(
      'replicate.delivery',
    );
  });

  it('refuses other hosts, plain http, look-alike hosts and loopback in production', () => {
    for (const url of [
      'https://evil.example/a.png',
      'http://v3.fal.media/a.png',
      'https://fal.media.evil.example/a.png',
      'https://notreplicate.delivery/a.png',
      'http://127.0.0.1:9000/a.png',
      'file:///etc/passwd',
      'not a url',
    ]) {
      expect(() => checkOutputUrl(url, policy), url).toThrow(DownloadRefused);
    }
  });

  it('accepts loopback when allowed (development and tests)', () => {
    expect(checkOutputUrl('http://127.0.0.1:9000/a.png', { ...policy, allowLoopback: true }).port).toBe(
      '9000',
    );
  });
});
