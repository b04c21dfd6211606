import { realpathSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { isAbsolute, normalize } from 'node:path';
import { checkPathGlob, matchPathGlob } from '../protocol/paths.js';
import { loadAddon } from './addon.js';
import { DaemonError, systemErrorCode } from './errors.js';
import type { CallerIdentity } from './peer.js';

/** Glob matching shared with signed policies: `*` inside one segment, `**` for zero or more segments. */
export { matchPathGlob };

export const RULES_VERSION = 1;

/**
 * One local access rule. A rule matches when the secret path matches one of
 * `paths` and every other field that the rule lists matches the caller. Inside
 * a field, any entry may match. `users` and `uids` both name the caller's uid
 * and are combined into one list.
 */
export interface Rule {
  paths: string[];
  uids?: number[];
  /** Matches the caller's primary group or any supplementary group. */
  gids?: number[];
  /** Login names, resolved to uids when the rules are loaded. */
  users?: string[];
  /** Absolute paths of executables. A symbolic link also matches its target as resolved at load time. */
  exes?: string[];
  /** SHA-256 of the executable's content, lowercase hex. */
  exeSha256?: string[];
}

/** The caller fields that rules read. */
export type RuleSubject = Pick<CallerIdentity, 'uid' | 'gid' | 'groups' | 'pid' | 'exe' | 'exeSha256'>;

interface CompiledRule {
  rule: Rule;
  uids: ReadonlySet<number> | null;
  gids: ReadonlySet<number> | null;
  exes: ReadonlySet<string> | null;
  exeSha256: ReadonlySet<string> | null;
}

export interface ParseRulesOptions {
  /** Resolves a login name to a uid, or null when there is no such user. Defaults to getpwnam(3). */
  lookupUid?: (name: string) => number | null;
}

const TOP_LEVEL_FIELDS = new Set(['version', 'rules']);
const RULE_FIELDS = new Set(['paths', 'uids', 'gids', 'users', 'exes', 'exeSha256']);
const MAX_ID = 0xfffffffe; // (uid_t)-1 means "no id" to the kernel
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

/**
 * The daemon's local access rules, checked before any request leaves the
 * machine. Rules are tried in file order and the first match wins.
 */
export class LocalRules {
  readonly source: string;
  /** True when some rule names exeSha256, so identifyCaller must hash executables. */
  readonly requiresExeHash: boolean;
  readonly #rules: readonly CompiledRule[];

  private constructor(source: string, rules: readonly CompiledRule[]) {
    this.source = source;
    this.#rules = rules;
    this.requiresExeHash = rules.some((compiled) => compiled.exeSha256 !== null);
  }

  /** The rules used when no rules file exists: only `uid` (the daemon's own user), any path, any executable. */
  static ownerOnly(uid: number): LocalRules {
    const rule: Rule = { paths: ['**'], uids: [uid] };
    return new LocalRules(`default rules (uid ${uid} only)`, [compileRule(rule, [uid])]);
  }

  /** Validates parsed JSON strictly. Errors name `source` and the bad field. Throws DaemonError('rules_invalid'). */
  static parse(json: unknown, source: string, options: ParseRulesOptions = {}): LocalRules {
    const lookupUid = options.lookupUid ?? lookupUidByName;
    const document = expectObject(json, source, '(top level)', TOP_LEVEL_FIELDS);
    if (document.version !== RULES_VERSION) {
      throw invalid(source, 'version', `must be ${RULES_VERSION}, got ${document.version === undefined ? 'nothing' : JSON.stringify(document.version)}`);
    }
    if (!Array.isArray(document.rules)) {
      throw invalid(source, 'rules', 'must be an array of rules');
    }
    const rules = document.rules.map((entry: unknown, index) => parseRule(entry, source, `rules[${index}]`, lookupUid));
    return new LocalRules(source, rules);
  }

  /** Returns the first rule that lets `caller` request `path`, or throws DaemonError('caller_not_allowed'). */
  authorize(caller: RuleSubject, path: string): Rule {
    const match = this.#rules.find((compiled) => ruleMatches(compiled, caller, path));
    if (match === undefined) {
      throw new DaemonError('caller_not_allowed', `no local rule allows uid ${caller.uid} (pid ${caller.pid}, ${caller.exe}) to request ${path}; see ${this.source}`);
    }
    return match.rule;
  }
}

/**
 * Reads and validates a rules file. With `missingOk`, a file that does not
 * exist yields LocalRules.ownerOnly for this process's uid. The file must not
 * be writable by group or others, and must belong to this user or root,
 * because a user who can edit it can grant themselves secrets.
 */
export async function loadRulesFile(file: string, options: ParseRulesOptions & { missingOk?: boolean } = {}): Promise<LocalRules> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (cause) {
    const code = systemErrorCode(cause);
    if (code === 'ENOENT' && options.missingOk === true) return LocalRules.ownerOnly(processUid());
    throw new DaemonError('rules_invalid', `reading rules file ${file} failed (${code ?? 'unknown error'})`, { cause });
  }

  let text: string;
  try {
    checkRulesFileOwner(file, await handle.stat());
    text = await handle.readFile('utf8');
  } finally {
    await handle.close();
  }

  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new DaemonError('rules_invalid', `${file}: invalid JSON (${(cause as Error).message})`, { cause });
  }
  return LocalRules.parse(json, file, options);
}

function checkRulesFileOwner(file: string, stat: { uid: number; mode: number }): void {
  const uid = processUid();
  if (stat.uid !== uid && stat.uid !== 0) {
    throw new DaemonError('rules_invalid', `rules file ${file} is owned by uid ${stat.uid}; it must belong to uid ${uid} or root`);
  }
  if ((stat.mode & 0o022) !== 0) {
    throw new DaemonError('rules_invalid', `rules file ${file} is writable by group or others; run \`chmod go-w ${file}\``);
  }
}

function parseRule(entry: unknown, source: string, field: string, lookupUid: (name: string) => number | null): CompiledRule {
  const object = expectObject(entry, source, field, RULE_FIELDS);
  const rule: Rule = { paths: parseList(object.paths, source, `${field}.paths`, parseGlob) };

  if (object.uids !== undefined) rule.uids = parseList(object.uids, source, `${field}.uids`, parseId);
  if (object.gids !== undefined) rule.gids = parseList(object.gids, source, `${field}.gids`, parseId);
  if (object.users !== undefined) rule.users = parseList(object.users, source, `${field}.users`, parseUserName);
  if (object.exes !== undefined) rule.exes = parseList(object.exes, source, `${field}.exes`, parseExe);
  if (object.exeSha256 !== undefined) rule.exeSha256 = parseList(object.exeSha256, source, `${field}.exeSha256`, parseSha256);

  if (rule.uids === undefined && rule.gids === undefined && rule.users === undefined) {
    throw invalid(source, field, 'must name uids, gids or users, so that it cannot match every local user');
  }

  const userUids = (rule.users ?? []).map((name, index) => {
    let uid: number | null;
    try {
      uid = lookupUid(name);
    } catch (cause) {
      throw new DaemonError('rules_invalid', `${source}: ${field}.users[${index}]: looking up user ${JSON.stringify(name)} failed (${systemErrorCode(cause) ?? 'unknown error'})`, { cause });
    }
    if (uid === null) throw invalid(source, `${field}.users[${index}]`, `no user named ${JSON.stringify(name)}`);
    return uid;
  });
  return compileRule(rule, [...(rule.uids ?? []), ...userUids]);
}

function compileRule(rule: Rule, uids: number[]): CompiledRule {
  const hasUids = rule.uids !== undefined || rule.users !== undefined;
  return {
    rule,
    uids: hasUids ? new Set(uids) : null,
    gids: rule.gids === undefined ? null : new Set(rule.gids),
    exes: rule.exes === undefined ? null : new Set(rule.exes.flatMap(withResolvedTarget)),
    exeSha256: rule.exeSha256 === undefined ? null : new Set(rule.exeSha256),
  };
}

function ruleMatches(compiled: CompiledRule, caller: RuleSubject, path: string): boolean {
  if (!compiled.rule.paths.some((glob) => matchPathGlob(glob, path))) return false;
  if (compiled.uids !== null && !compiled.uids.has(caller.uid)) return false;
  if (compiled.gids !== null && !inAnyGroup(compiled.gids, caller)) return false;
  if (compiled.exes !== null && !compiled.exes.has(caller.exe)) return false;
  // A caller identified without hashing never matches a rule that names a hash.
  if (compiled.exeSha256 !== null && (caller.exeSha256 === undefined || !compiled.exeSha256.has(caller.exeSha256))) return false;
  return true;
}

function inAnyGroup(gids: ReadonlySet<number>, caller: RuleSubject): boolean {
  return gids.has(caller.gid) || caller.groups.some((group) => gids.has(group));
}

/** Returns the path and, when it is a symbolic link, its current target. */
function withResolvedTarget(exe: string): string[] {
  try {
    const target = realpathSync(exe);
    return target === exe ? [exe] : [exe, target];
  } catch {
    return [exe];
  }
}

function expectObject(value: unknown, source: string, field: string, allowed: ReadonlySet<string>): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(source, field, 'must be a JSON object');
  }
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) {
      throw invalid(source, field, `unknown field ${JSON.stringify(key)}; expected one of ${[...allowed].join(', ')}`);
    }
  }
  return value as Record<string, unknown>;
}

/** Parses a non-empty array, naming the failing element in errors. */
function parseList<T>(value: unknown, source: string, field: string, parseItem: (item: unknown) => T): T[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw invalid(source, field, 'must be a non-empty array');
  }
  return value.map((item: unknown, index) => {
    try {
      return parseItem(item);
    } catch (error) {
      throw invalid(source, `${field}[${index}]`, (error as Error).message);
    }
  });
}

function parseGlob(item: unknown): string {
  checkPathGlob(item, 'glob');
  return item as string;
}

function parseId(item: unknown): number {
  if (typeof item !== 'number' || !Number.isInteger(item) || item < 0 || item > MAX_ID) {
    throw new Error(`must be an integer from 0 to ${MAX_ID}, got ${JSON.stringify(item)}`);
  }
  return item;
}

function parseUserName(item: unknown): string {
  if (typeof item !== 'string' || item === '' || item.includes('\0')) {
    throw new Error(`must be a non-empty user name, got ${JSON.stringify(item)}`);
  }
  return item;
}

function parseExe(item: unknown): string {
  if (typeof item !== 'string' || !isAbsolute(item) || normalize(item) !== item || item.endsWith('/')) {
    throw new Error(`must be an absolute, normalized file path, got ${JSON.stringify(item)}`);
  }
  return item;
}

function parseSha256(item: unknown): string {
  if (typeof item !== 'string' || !SHA256_HEX.test(item)) {
    throw new Error(`must be 64 hex digits (a SHA-256 digest), got ${JSON.stringify(item)}`);
  }
  return item.toLowerCase();
}

function invalid(source: string, field: string, problem: string): DaemonError {
  return new DaemonError('rules_invalid', `${source}: ${field}: ${problem}`);
}

function lookupUidByName(name: string): number | null {
  return loadAddon().lookupUserByName(name)?.uid ?? null;
}

function processUid(): number {
  const uid = process.getuid?.();
  if (uid === undefined) throw new DaemonError('rules_invalid', 'local rules need a platform with user ids (Linux)');
  return uid;
}
