// A tiny stand-in for 'vitest' that runs protocol test files inside a web
// page: describe, it, it.each and the expect matchers those files use.
// Results are collected on window.__results for the Node-side test to read.

type TestFn = () => unknown;

interface Case {
  name: string;
  fn: TestFn;
}

interface Result {
  name: string;
  ok: boolean;
  error?: string;
}

const cases: Case[] = [];
const prefix: string[] = [];

export function describe(name: string, body: () => void): void {
  prefix.push(name);
  try {
    body();
  } finally {
    prefix.pop();
  }
}

function format(template: string, args: unknown[]): string {
  let index = 0;
  return template.replace(/%[sdjo]/g, () => {
    const value = args[index++];
    return typeof value === 'string' ? value : JSON.stringify(value);
  });
}

function itImpl(name: string, fn: TestFn): void {
  cases.push({ name: [...prefix, name].join(' > '), fn });
}

export const it = Object.assign(itImpl, {
  each(table: readonly unknown[]) {
    return (name: string, fn: (...args: unknown[]) => unknown): void => {
      for (const row of table) {
        const args = Array.isArray(row) ? (row as unknown[]) : [row];
        itImpl(format(name, args), () => fn(...args));
      }
    };
  },
});
export const test = it;

class Asymmetric {
  constructor(readonly expected: Record<string, unknown>) {}
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function equals(a: unknown, b: unknown): boolean {
  if (b instanceof Asymmetric) return matchesObject(a, b.expected);
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) return a.length === b.length && a.every((byte, i) => byte === b[i]);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => equals(item, b[i]));
  if (isRecord(a) && isRecord(b) && !Array.isArray(a) && !Array.isArray(b)) {
    const keysA = Object.keys(a).filter((key) => a[key] !== undefined);
    const keysB = Object.keys(b).filter((key) => b[key] !== undefined);
    return keysA.length === keysB.length && keysB.every((key) => equals(a[key], b[key]));
  }
  return false;
}

function matchesObject(actual: unknown, expected: Record<string, unknown>): boolean {
  if (!isRecord(actual)) return false;
  return Object.entries(expected).every(([key, value]) => {
    const got = actual[key];
    if (isRecord(value) && !(value instanceof Asymmetric) && !(value instanceof Uint8Array) && !Array.isArray(value)) return matchesObject(got, value);
    return equals(got, value);
  });
}

function show(value: unknown): string {
  if (value instanceof Error) return `${value.name}(${(value as { code?: string }).code ?? ''}): ${value.message}`;
  try {
    return JSON.stringify(value, (_key, item: unknown) => (item instanceof Uint8Array ? `Uint8Array(${item.length})` : item));
  } catch {
    return String(value);
  }
}

function thrownMatches(error: unknown, expected: unknown): boolean {
  if (expected === undefined) return true;
  if (typeof expected === 'function') return error instanceof (expected as new () => unknown);
  if (expected instanceof Asymmetric) return matchesObject(error, expected.expected);
  if (typeof expected === 'string') return error instanceof Error && error.message.includes(expected);
  if (expected instanceof RegExp) return error instanceof Error && expected.test(error.message);
  return false;
}

type Matchers = Record<string, (...args: never[]) => unknown>;

function matchers(actual: unknown, negate: boolean, label: string): Matchers {
  const check = (pass: boolean, description: string): void => {
    if (pass === negate) throw new Error(`${label}expected ${show(actual)} ${negate ? 'not ' : ''}${description}`);
  };
  return {
    toBe: (expected: unknown) => { check(Object.is(actual, expected), `to be ${show(expected)}`); },
    toEqual: (expected: unknown) => { check(equals(actual, expected), `to equal ${show(expected)}`); },
    toStrictEqual: (expected: unknown) => { check(equals(actual, expected), `to equal ${show(expected)}`); },
    toMatchObject: (expected: Record<string, unknown>) => { check(matchesObject(actual, expected), `to match ${show(expected)}`); },
    toContain: (item: unknown) => {
      const pass = typeof actual === 'string' ? actual.includes(String(item)) : Array.isArray(actual) && actual.some((value) => equals(value, item));
      check(pass, `to contain ${show(item)}`);
    },
    toMatch: (pattern: RegExp | string) => {
      check(typeof actual === 'string' && (typeof pattern === 'string' ? actual.includes(pattern) : pattern.test(actual)), `to match ${String(pattern)}`);
    },
    toBeGreaterThan: (bound: number) => { check(typeof actual === 'number' && actual > bound, `to be greater than ${bound}`); },
    toBeInstanceOf: (type: new () => unknown) => { check(actual instanceof type, `to be an instance of ${type.name}`); },
    toBeDefined: () => { check(actual !== undefined, 'to be defined'); },
    toBeUndefined: () => { check(actual === undefined, 'to be undefined'); },
    toThrow: (expected?: unknown) => {
      if (typeof actual !== 'function') throw new Error(`${label}toThrow needs a function`);
      let thrown = false;
      let error: unknown;
      try {
        (actual as () => unknown)();
      } catch (caught) {
        thrown = true;
        error = caught;
      }
      check(thrown && thrownMatches(error, expected), `to throw ${show(expected)}${thrown ? `, threw ${show(error)}` : ''}`);
    },
  };
}

export function expect(actual: unknown, message?: string) {
  const label = message === undefined ? '' : `${message}: `;
  const rejects = new Proxy({}, {
    get(_target, name: string) {
      return async (...args: never[]) => {
        let error: unknown;
        try {
          await (actual as Promise<unknown>);
        } catch (caught) {
          error = caught;
          const matcher = matchers(error, false, label)[name];
          if (matcher === undefined) throw new Error(`vitest shim has no matcher rejects.${name}`);
          matcher(...args);
          return;
        }
        throw new Error(`${label}expected the promise to reject, it resolved`);
      };
    },
  });
  return { ...matchers(actual, false, label), not: matchers(actual, true, label), rejects };
}
expect.objectContaining = (expected: Record<string, unknown>): unknown => new Asymmetric(expected);

/** Runs every registered case in order and stores the results on window.__results. */
export async function runRegisteredTests(): Promise<Result[]> {
  const results: Result[] = [];
  for (const testCase of cases) {
    try {
      await testCase.fn();
      results.push({ name: testCase.name, ok: true });
    } catch (error) {
      results.push({ name: testCase.name, ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
    }
  }
  return results;
}
