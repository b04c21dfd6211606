import { readFile } from 'node:fs/promises';
import type { CliIo, Command } from '../command.js';
import { parseCommandArgs } from '../command.js';
import { daemonSocketPath, printProgress, requestSecrets } from '../daemon-client.js';
import { parseLeaseOption } from '../format.js';
import { CliError, usageError } from '../errors.js';
import { findTemplateRefs, renderTemplate } from '../refs.js';
import { writeFileAtomic } from '../../local/files.js';

const USAGE = 'stillvault inject -i TEMPLATE [-o OUT] [--reason TEXT] [--lease DURATION] [--socket PATH]';

/**
 * `stillvault inject`: replaces every `{{ sv://PATH }}` in a template with
 * the secret's value, all paths in one daemon call. The output file is
 * written with mode 0600 through an exclusive temporary file and a rename,
 * so it is never readable by others, not even partly written.
 */
export const injectCommand: Command = {
  name: ['inject'],
  summary: 'fill {{ sv://PATH }} placeholders in a template with approved secrets',
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs(argv, {
      in: { type: 'string', short: 'i' },
      out: { type: 'string', short: 'o' },
      reason: { type: 'string' },
      lease: { type: 'string' },
      socket: { type: 'string' },
    }, USAGE);
    if (positionals.length > 0) throw usageError(`unexpected argument ${JSON.stringify(positionals[0])}`, `usage: ${USAGE}`);
    if (values.in === undefined) throw usageError('-i TEMPLATE is required', `usage: ${USAGE}`);
    const leaseSeconds = parseLeaseOption(values.lease);

    let template: Buffer;
    try {
      template = await readFile(values.in);
    } catch (cause) {
      throw templateError(values.in, cause);
    }
    const paths = [...new Set(findTemplateRefs(template).map((ref) => ref.path))];
    const secrets = paths.length === 0
      ? new Map<string, Buffer>()
      : await requestSecrets(
        daemonSocketPath(io.env, values.socket),
        { paths, reason: values.reason ?? '', ...(leaseSeconds === undefined ? {} : { leaseSeconds }) },
        (event) => { printProgress(io, event); },
      );

    const output = renderTemplate(template, secrets);
    try {
      if (values.out === undefined) await write(io.stdout, output);
      else await writeFileAtomic(values.out, output, 0o600);
    } finally {
      output.fill(0);
      for (const value of secrets.values()) value.fill(0);
    }
    return 0;
  },
};

/** Turns a failed read of the template into an error that names the file and says what to check. */
function templateError(file: string, cause: unknown): CliError {
  const code = (cause as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') {
    return new CliError('template_not_found', `template ${file} not found`, { hint: 'check the path given to -i; it is relative to the current directory', cause });
  }
  if (code === 'EISDIR') return new CliError('template_unreadable', `template ${file} is a directory`, { hint: 'pass a file to -i', cause });
  if (code === 'EACCES') return new CliError('template_unreadable', `no permission to read template ${file}`, { cause });
  return new CliError('template_unreadable', `reading template ${file} failed: ${code ?? (cause as Error).message}`, { cause });
}

function write(stream: NodeJS.WritableStream, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(bytes, (error) => {
      if (error) reject(error);
      else resolve();
    });
  });
}
