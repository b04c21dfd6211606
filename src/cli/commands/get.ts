import type { CliIo, Command } from '../command.js';
import { parseCommandArgs } from '../command.js';
import { daemonSocketPath, parseLeaseOption, printProgress, requestSecrets } from '../daemon-client.js';
import { usageError } from '../errors.js';
import { formatSecret, type OutputFormat } from '../shellfmt.js';
import { checkSecretPath } from '../../protocol/paths.js';

const USAGE = 'stillvault get PATH [--reason TEXT] [--format raw|json|env|sh] [--name VAR] [--lease SECONDS] [--socket PATH]';
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
