import type { CliIo } from './command.js';
import { usageError } from './errors.js';

/**
 * Output helpers for listing commands (a plain table for people, or JSON for
 * scripts with --format json) and the duration syntax options use.
 */

export type OutputFormat = 'table' | 'json';

/** Reads the --format option: `table` (default) or `json`. */
export function parseFormat(value: string | undefined): OutputFormat {
  if (value === undefined || value === 'table') return 'table';
  if (value === 'json') return 'json';
  throw usageError(`invalid --format ${JSON.stringify(value)}`, 'use --format table or --format json');
}

/** Writes rows as an aligned table with a header line, or a note on stderr when there are none. */
export function writeTable(io: CliIo, headers: string[], rows: string[][], emptyNote: string): void {
  if (rows.length === 0) {
    io.stderr.write(`${emptyNote}\n`);
    return;
  }
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]): string => cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd();
  io.stdout.write(`${line(headers)}\n`);
  for (const row of rows) io.stdout.write(`${line(row)}\n`);
}

/** Writes one JSON document on stdout. */
export function writeJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** Parses a duration such as 30s, 15m, 2h or 1d into seconds. */
export function parseDuration(text: string, option: string): number {
  const match = /^(\d{1,9})([smhd])$/.exec(text.trim());
  const unit = match?.[2];
  if (match?.[1] === undefined || unit === undefined) {
    throw usageError(`invalid ${option} ${JSON.stringify(text)}: expected a number and a unit, for example 30s, 15m, 2h or 1d`);
  }
  const seconds = Number(match[1]) * (DURATION_UNITS[unit] ?? 1);
  if (seconds <= 0) throw usageError(`${option} must be longer than zero`);
  return seconds;
}

/** Formats seconds the way parseDuration reads them, choosing the largest exact unit. */
export function formatDuration(seconds: number): string {
  for (const unit of ['d', 'h', 'm'] as const) {
    const size = DURATION_UNITS[unit] ?? 1;
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

/** Formats Unix seconds as an ISO 8601 UTC time without milliseconds. */
export function formatTime(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
