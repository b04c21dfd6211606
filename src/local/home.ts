import os from 'node:os';
import path from 'node:path';

/**
 * Where a Stillvault identity keeps its state: $STILLVAULT_HOME, else
 * $XDG_CONFIG_HOME/stillvault, else ~/.config/stillvault. Each role has its
 * own subdirectory, so one home can hold an admin, an approver and a daemon,
 * and several homes can coexist on one machine.
 */
export function stillvaultHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STILLVAULT_HOME) return path.resolve(env.STILLVAULT_HOME);
  const configHome = env.XDG_CONFIG_HOME ? path.resolve(env.XDG_CONFIG_HOME) : path.join(os.homedir(), '.config');
  return path.join(configHome, 'stillvault');
}

export type Role = 'admin' | 'approver' | 'daemon';

export function roleDirectory(role: Role, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(stillvaultHome(env), role);
}
