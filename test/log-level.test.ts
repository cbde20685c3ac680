import { describe, expect, it } from 'vitest';
import { parseLogLevel } from '../cli/logger.js';
import { InvalidRequestError } from '../jobs/errors.js';
import { runCli } from './support/cli.js';
import { listFiles, temporaryDirectory } from './support/export.js';

describe('LOG_LEVEL', () => {
  it.each(['verbose', 'LOUD', 'warning', '1', 'info ', 'debug,info'])(
    'LOG_LEVEL=%j exits 2 naming LOG_LEVEL and the allowed values, with no stack and nothing written (regression: a pino stack, exit 1)',
    async (level) => {
      const cwd = await temporaryDirectory();
      const result = await runCli(['export', 'conversations', '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-01', '--out', 'file://./exports'], {
        LOG_LEVEL: level,
        // Never reached: the level is checked before anything starts.
        DATABASE_URL: 'postgres://127.0.0.1:1/none',
      }, cwd);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain(`audit-export: invalid request: LOG_LEVEL: expected one of debug, info, warn, error, got ${JSON.stringify(level)}`);
      expect(result.stderr).not.toMatch(/\n\s+at /);
      expect(result.stdout).toBe('');
      expect(await listFiles(cwd)).toEqual([]);
    },
  );

  it('an empty LOG_LEVEL is the default (info), as if unset', async () => {
    const result = await runCli(['status', 'no-such-request'], { LOG_LEVEL: '', DATABASE_URL: undefined, STATE_DATABASE_URL: undefined });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('"severity":"ERROR"');
    expect(result.stderr).toContain('STATE_DATABASE_URL: not set');
  });

  it('accepts the documented levels and the other pino levels, in any case', () => {
    for (const level of ['debug', 'info', 'warn', 'error', 'trace', 'fatal', 'silent', 'DEBUG', 'Warn']) {
      expect(parseLogLevel(level)).toBe(level.toLowerCase());
    }
    expect(parseLogLevel(undefined)).toBe('info');
    expect(parseLogLevel('')).toBe('info');
    expect(() => parseLogLevel('verbose')).toThrow(InvalidRequestError);
    expect(() => parseLogLevel('verbose')).toThrow(/^LOG_LEVEL: expected one of debug, info, warn, error, got "verbose"$/);
  });
});
