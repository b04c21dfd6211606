#!/usr/bin/env node
// Prints one closing line, "N passed, N failed, N skipped", from vitest's JSON
// report, and lists every skipped test. Under CI=true a skipped test fails the
// run: CI must run the PostgreSQL and browser suites, never skip them.
import { readFileSync } from 'node:fs';

const reportFile = process.argv[2] ?? 'test-results/vitest.json';
const report = JSON.parse(readFileSync(reportFile, 'utf8'));

let passed = 0;
let failed = 0;
const skipped = [];
for (const file of report.testResults ?? []) {
  for (const test of file.assertionResults ?? []) {
    if (test.status === 'passed') passed += 1;
    else if (test.status === 'failed') failed += 1;
    else skipped.push(`${file.name}: ${test.fullName} (${test.status})`);
  }
}

for (const line of skipped) process.stderr.write(`skipped: ${line}\n`);
process.stdout.write(`${passed} passed, ${failed} failed, ${skipped.length} skipped\n`);

if (failed > 0 || passed === 0) process.exitCode = 1;
if (process.env.CI === 'true' && skipped.length > 0) {
  process.stderr.write('test-summary: CI requires every test to run, but some were skipped (see above)\n');
  process.exitCode = 1;
}
