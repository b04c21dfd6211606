import type { Command } from '../command.js';

/**
 * The CLI's command modules, by the first word of their commands. The
 * dispatcher imports only the modules of the word it was given, so an agent's
 * `stillvault get` does not load the protocol, the broker client or pino.
 * The order is the order `stillvault help` lists them in.
 */
export const COMMAND_MODULES: { word: string; load: () => Promise<Command[]> }[] = [
  { word: 'quickstart', load: async () => [(await import('./quickstart.js')).quickstartCommand] },
  { word: 'broker', load: async () => [(await import('./broker.js')).brokerCommand] },
  { word: 'daemon', load: async () => [(await import('./daemon-run.js')).daemonRunCommand, ...(await import('./daemon-enroll.js')).daemonEnrollCommands] },
  { word: 'get', load: async () => [(await import('./get.js')).getCommand] },
  { word: 'run', load: async () => [(await import('./run.js')).runCommand] },
  { word: 'inject', load: async () => [(await import('./inject.js')).injectCommand] },
  { word: 'init', load: async () => [(await import('./init.js')).initCommand] },
  { word: 'approver', load: async () => [...(await import('./approver.js')).approverCommands, (await import('./approver-serve.js')).approverServeCommand] },
  { word: 'enrollments', load: async () => (await import('./enrollments.js')).enrollmentCommands },
  { word: 'policy', load: async () => (await import('./policy.js')).policyCommands },
  { word: 'secret', load: async () => (await import('./secret.js')).secretCommands },
  { word: 'approve', load: async () => [(await import('./approve.js')).approveCommand] },
  { word: 'audit', load: async () => (await import('./audit.js')).auditCommands },
  { word: 'lease', load: async () => (await import('./lease.js')).leaseCommands },
];

/** Loads the commands whose first word is `word`, or every command when `word` is undefined. */
export async function loadCommands(word?: string): Promise<Command[]> {
  const modules = COMMAND_MODULES.filter((module) => word === undefined || module.word === word);
  const loaded = await Promise.all(modules.map((module) => module.load()));
  return loaded.flat();
}
