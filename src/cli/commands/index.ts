import type { Command } from '../command.js';
import { approverServeCommand } from './approver-serve.js';
import { brokerCommand } from './broker.js';
import { quickstartCommand } from './quickstart.js';
import { daemonRunCommand } from './daemon-run.js';
import { getCommand } from './get.js';
import { injectCommand } from './inject.js';
import { runCommand } from './run.js';
import { initCommand } from './init.js';
import { approverCommands } from './approver.js';
import { daemonEnrollCommands } from './daemon-enroll.js';
import { enrollmentCommands } from './enrollments.js';
import { policyCommands } from './policy.js';
import { secretCommands } from './secret.js';
import { auditCommands } from './audit.js';
import { approveCommand } from './approve.js';
import { leaseCommands } from './lease.js';

/** Every CLI command, in the order `stillvault help` lists them. */
export const COMMANDS: Command[] = [
  quickstartCommand,
  brokerCommand,
  approverServeCommand,
  daemonRunCommand,
  getCommand,
  runCommand,
  injectCommand,
  initCommand,
  ...approverCommands,
  ...daemonEnrollCommands,
  ...enrollmentCommands,
  ...policyCommands,
  ...secretCommands,
  approveCommand,
  ...auditCommands,
  ...leaseCommands,
];
