import { describe, expect, it } from 'vitest';
import { formatLogLine } from '../../lib/dev/log-format';

describe('the launcher log format', () => {
  const at = new Date(2026, 10, 25, 12, 0, 1);
  it('turns pino JSON into one readable line', () => {
    const line = JSON.stringify({ level: 40, time: 1, pid: 3, hostname: 'h', msg: 'slow', requestId: 'r1' });
    expect(formatLogLine('api', line, at)).toBe('12:00:01 api      WARN  slow  requestId=r1');
  });
  it('passes other lines through with the component', () => {
    expect(formatLogLine('temporal', 'plain text', at)).toBe('12:00:01 temporal plain text');
  });
});
