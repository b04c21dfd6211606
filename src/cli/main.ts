#!/usr/bin/env node
import { runCli } from './run.js';

// The only place that ends the process, so every command's finally blocks
// (wiping keys, removing sockets) have run by the time the exit code is set.
process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
});
