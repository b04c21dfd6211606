import type { CliIo, Command } from '../command.js';
import { parseCommandArgs } from '../command.js';
import { daemonSocketPath, printProgress, requestSecrets } from '../daemon-client.js';
import { parseLeaseOption } from '../format.js';
import { usageError } from '../errors.js';
import { formatSecret, type OutputFormat } from '../shellfmt.js';
import { checkSecretPath } from '../../protocol/paths.js';

const USAGE = 'stillvault get PATH [--reason TEXT] [--format raw|json|env|sh] [--name VAR] [--lease DURATION] [--socket PATH]';
const FORMATS = ['raw', 'json', 'env', 'sh'] as const;

/** `stillvault get PATH`: requests one secret from the daemon and writes its value to stdout. */
export const getCommand: Command = {
  name: ['get'],
  summary: 'print one secret on stdout once an approver allows it',
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs(argv, {
      reason: { type: 'string' },
      format: { type: 'string', default: 'raw' },
      name: { type: 'string' },
      lease: { type: 'string' },
      socket: { type: 'string' },
    }, USAGE);
    const [path, ...extra] = positionals;
    if (path === undefined || extra.length > 0) throw usageError('expected exactly one secret PATH', `usage: ${USAGE}`);
    const secretPath = path.startsWith('sv://') ? path.slice('sv://'.length) : path;
    try {
      checkSecretPath(secretPath, 'PATH');
    } catch (cause) {
      throw usageError((cause as Error).message, 'a path is segments of letters, digits, ".", "_" and "-" joined by "/"');
    }
    const format = parseFormat(values.format);
    const name = format === 'raw' ? undefined : (values.name ?? variableNameOf(secretPath));
    if (values.name !== undefined) checkVariableName(values.name, true);
    else if ((format === 'env' || format === 'sh') && name !== undefined) checkVariableName(name, false);
    const leaseSeconds = parseLeaseOption(values.lease);

    const secrets = await requestSecrets(
      daemonSocketPath(io.env, values.socket),
      { paths: [secretPath], reason: values.reason ?? '', ...(leaseSeconds === undefined ? {} : { leaseSeconds }) },
      (event) => { printProgress(io, event); },
    );
    const value = secrets.get(secretPath) ?? Buffer.alloc(0);
    try {
      const output = format === 'raw' ? value : formatSecret(format, name ?? '', value);
      try {
        await write(io.stdout, output);
      } finally {
        if (output !== value) output.fill(0);
      }
    } finally {
      value.fill(0);
    }
    return 0;
  },
};

function parseFormat(text: string | undefined): 'raw' | OutputFormat {
  const format = FORMATS.find((candidate) => candidate === text);
  if (format === undefined) throw usageError(`--format must be one of ${FORMATS.join(', ')}, got ${JSON.stringify(text)}`);
  return format;
}

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Rejects an invalid shell variable name before the daemon is asked, so a
 * typo costs no approval. `given` tells whether it came from --name or was
 * derived from the path.
 */
function checkVariableName(name: string, given: boolean): void {
  if (SHELL_NAME.test(name)) return;
  const source = given ? `--name ${JSON.stringify(name)}` : `the variable name ${JSON.stringify(name)} derived from the path`;
  throw usageError(`${source} is not a valid shell variable name`, 'pass --name VAR with letters, digits and _, not starting with a digit');
}

/**
 * Derives a shell variable name from a path's last segment: upper case, with
 * every character that is not a letter, digit or _ replaced by _. A name
 * that would start with a digit is refused by formatSecret.
 */
export function variableNameOf(path: string): string {
  const last = path.split('/').at(-1) ?? path;
  return last.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
}

function write(stream: NodeJS.WritableStream, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(bytes, (error) => {
      if (error) reject(error);
      else resolve();
    });
  });
}
