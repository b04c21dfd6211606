// Usability of the CLI for a new user: help for groups and commands,
// plain errors for mistyped commands and options, durations in either form,
// exit code 2 for invalid option values, and pasted passphrases. The CLI
// tests run `node dist/cli/main.js`, so build first with
// `npx tsc -p tsconfig.build.json`.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BROKER_HELP } from '../../src/broker/help.js';
import { parseCommandArgs, type CliIo } from '../../src/cli/command.js';
import { CliError } from '../../src/cli/errors.js';
import { MAX_LEASE_SECONDS, parseDuration, parseLeaseOption } from '../../src/cli/format.js';
import { readHidden, readPassphrase } from '../../src/cli/prompt.js';
import { closestMatch, editDistance } from '../../src/cli/suggest.js';
import { runCli } from '../daemon/world.js';

/** Runs the built CLI with its own empty STILLVAULT_HOME, so no state of this machine is used. */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const home = mkdtempSync(join(tmpdir(), 'sv-usability-'));
  const result = await runCli(args, { env: { PATH: process.env.PATH, STILLVAULT_HOME: home, ...env } });
  return { code: result.code, stdout: result.stdout.toString('utf8'), stderr: result.stderr };
}

/** Builds a fake terminal: a stdin stream that claims to be a TTY, with stderr collected. */
function terminalIo(): { io: CliIo; input: PassThrough; prompts: () => string } {
  const input = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => undefined });
  const stderr = new PassThrough();
  let prompts = '';
  stderr.on('data', (chunk: Buffer) => { prompts += chunk.toString('utf8'); });
  return { io: { stdin: input, stdout: new PassThrough(), stderr, env: {} }, input, prompts: () => prompts };
}

describe('readHidden', () => {
  it('keeps a pasted second line for the next call', async () => {
    const { io, input } = terminalIo();
    input.write('pp1\npp2\n');
    expect(await readHidden(io, 'first: ')).toBe('pp1');
    expect(await readHidden(io, 'second: ')).toBe('pp2');
  });

  it('treats \\r\\n as one line end', async () => {
    const { io, input } = terminalIo();
    input.write('one\r\ntwo\r\n');
    expect(await readHidden(io, 'first: ')).toBe('one');
    expect(await readHidden(io, 'second: ')).toBe('two');
  });

  it('joins a line split across chunks', async () => {
    const { io, input } = terminalIo();
    const reading = readHidden(io, 'prompt: ');
    input.write('pass');
    input.write('phrase\n');
    expect(await reading).toBe('passphrase');
  });

  it('confirms a pasted passphrase', async () => {
    const { io, input, prompts } = terminalIo();
    input.write('pp1\npp1\n');
    expect(await readPassphrase(io, 'New passphrase: ', { confirm: true })).toBe('pp1');
    expect(prompts()).toContain('Repeat the passphrase: ');
  });

  it('rejects a pasted mismatch', async () => {
    const { io, input } = terminalIo();
    input.write('pp1\npp2\n');
    await expect(readPassphrase(io, 'New passphrase: ', { confirm: true })).rejects.toMatchObject({ code: 'passphrase_mismatch' });
  });
});

describe('parseDuration', () => {
  it('accepts a bare number as seconds', () => {
    expect(parseDuration('600', '--lease')).toBe(600);
  });

  it('accepts units', () => {
    expect(parseDuration('30s', '--lease')).toBe(30);
    expect(parseDuration('10m', '--lease')).toBe(600);
    expect(parseDuration('2h', '--lease')).toBe(7200);
    expect(parseDuration('1d', '--lease')).toBe(86_400);
  });

  it('rejects invalid text with a usage error', () => {
    for (const text of ['', '10x', '-5', '1.5m', 'm', '0', '0m']) {
      expect(() => parseDuration(text, '--lease'), text).toThrow(CliError);
      try {
        parseDuration(text, '--lease');
      } catch (error) {
        expect((error as CliError).exitCode, text).toBe(2);
      }
    }
  });

  it('rejects a value above the maximum', () => {
    expect(() => parseDuration('31d', '--lease', MAX_LEASE_SECONDS)).toThrow(/maximum of 30d/);
    expect(parseDuration('30d', '--lease', MAX_LEASE_SECONDS)).toBe(MAX_LEASE_SECONDS);
  });

  it('parseLeaseOption passes undefined through', () => {
    expect(parseLeaseOption(undefined)).toBeUndefined();
    expect(parseLeaseOption('10m')).toBe(600);
  });
});

describe('closestMatch', () => {
  it('finds near words', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(closestMatch('lst', ['set', 'list'])).toBe('list');
    expect(closestMatch('polciy', ['policy', 'secret'])).toBe('policy');
    expect(closestMatch('--formt', ['--format', '--lines'])).toBe('--format');
  });

  it('suggests nothing for distant words', () => {
    expect(closestMatch('x', ['rm', 'set'])).toBeUndefined();
    expect(closestMatch('deploy', ['policy', 'secret'])).toBeUndefined();
  });
});

describe('help', () => {
  it('broker --help prints the full options', async () => {
    const result = await cli(['broker', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(BROKER_HELP);
  });

  it('group --help lists subcommands', async () => {
    for (const args of [['secret', '--help'], ['policy', '-h'], ['help', 'secret']]) {
      const result = await cli(args);
      expect(result.code, args.join(' ')).toBe(0);
      expect(result.stdout, args.join(' ')).toContain(`${args.includes('policy') ? 'policy' : 'secret'} list`);
    }
  });

  it('bare group word exits 2 with the list', async () => {
    const result = await cli(['secret']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('needs a subcommand');
    expect(result.stderr).toContain('secret history');
    expect(result.stdout).toBe('');
  });

  it('help COMMAND prints the usage', async () => {
    const result = await cli(['help', 'policy', 'set']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('usage: stillvault policy set NAME --paths');
  });

  it('help for an unknown topic exits 2', async () => {
    const result = await cli(['help', 'polcy']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('did you mean `stillvault help policy`?');
  });

  it('command --help after -- reaches the command', async () => {
    const result = await cli(['run', '--', process.execPath, '-e', 'process.stdout.write(process.argv[1] ?? "")', '--', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('--help');
  });
});

describe('unknown commands and options', () => {
  it('suggests the closest command', async () => {
    for (const [args, suggestion] of [[['polciy', 'list'], 'policy list'], [['policy', 'lst'], 'policy list'], [['secrets'], 'secret']] as const) {
      const result = await cli([...args]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toContain(`did you mean \`stillvault ${suggestion}\`?`);
    }
  });

  it('names an unknown option plainly', async () => {
    const result = await cli(['policy', 'list', '--formt', 'json']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('stillvault: error: unknown option --formt\n');
    expect(result.stderr).toContain('did you mean --format?');
    expect(result.stderr).not.toContain('positional argument');
  });

  it('broker suggests a listed option', async () => {
    const result = await cli(['broker', '--lisen', '127.0.0.1:0']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('stillvault: error: unknown option --lisen\n');
    expect(result.stderr).toContain('did you mean --listen?');
  });

  it('names a missing option value plainly', async () => {
    const result = await cli(['secret', 'list', '--format']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('option --format needs a value');
  });

  it('run without -- says to add it', async () => {
    const result = await cli(['run', process.execPath, '-e', '1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown option -e');
    expect(result.stderr).toContain('put -- before the command');
  });
});

describe('option values', () => {
  const missingSocket = join(tmpdir(), 'sv-usability-no-daemon.sock');

  it('get accepts --lease in both forms', async () => {
    for (const lease of ['600', '10m']) {
      const result = await cli(['get', 'prod/token', '--lease', lease, '--socket', missingSocket]);
      expect(result.code, lease).toBe(5);
    }
  });

  it('get rejects an invalid --lease with exit 2', async () => {
    const result = await cli(['get', 'prod/token', '--lease', '10x', '--socket', missingSocket]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('invalid --lease "10x"');
  });

  it('get rejects --name 1X with exit 2', async () => {
    const result = await cli(['get', 'prod/token', '--format', 'env', '--name', '1X', '--socket', missingSocket]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('not a valid shell variable name');
  });

  it('policy set --quorum 2 exits 2', async () => {
    const result = await cli(['policy', 'set', 'prod', '--paths', 'prod/**', '--approvers', 'alice', '--quorum', '2']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('quorum above 1 is not supported yet');
  });

  it('a malformed invite token exits 2', async () => {
    for (const role of ['approver', 'daemon']) {
      const result = await cli([role, 'enroll', '--invite', 'svinv1.not-a-token']);
      expect(result.code, role).toBe(2);
      expect(result.stderr, role).toContain('invalid invite token');
    }
  });

  it('run rejects a bad --env reference with exit 2', async () => {
    const result = await cli(['run', '--env', 'TOKEN=sv://bad path', '--', process.execPath, '-e', '1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('TOKEN (set in --env): ');
  });

  it('inject names a missing template', async () => {
    const result = await cli(['inject', '-i', 'nofile.txt', '--socket', missingSocket]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('template nofile.txt not found');
    expect(result.stderr).toContain('hint: ');
  });
});

describe('ids starting with a dash', () => {
  it('are positionals, not options', () => {
    const parsed = parseCommandArgs(['-VeYNF_Vop5HEAjE471FTg', '--yes'], { yes: { type: 'boolean' } }, 'usage');
    expect(parsed.positionals).toEqual(['-VeYNF_Vop5HEAjE471FTg']);
    expect(parsed.values.yes).toBe(true);
  });

  it('work as option values', () => {
    const parsed = parseCommandArgs(['--name', '--eYNF_Vop5HEAjE471FTg'], { name: { type: 'string' } }, 'usage');
    expect(parsed.values.name).toBe('--eYNF_Vop5HEAjE471FTg');
  });

  it('leave arguments after -- alone', () => {
    const parsed = parseCommandArgs(['--', '-VeYNF_Vop5HEAjE471FTg'], {}, 'usage');
    expect(parsed.positionals).toEqual(['-VeYNF_Vop5HEAjE471FTg']);
  });

  it('still reject real unknown options', () => {
    expect(() => parseCommandArgs(['--formt'], {}, 'usage')).toThrow(/unknown option --formt/);
  });
});
