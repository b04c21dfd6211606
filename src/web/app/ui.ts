/**
 * DOM helpers. Every text goes in through textContent or attributes, never
 * as HTML, so nothing the broker or an agent wrote can become markup.
 */

type Child = Node | string | null | undefined | false;
type Attributes = Record<string, string | boolean | undefined>;

/** Creates an element with attributes (a `false` or undefined value is left out) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attributes: Attributes = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child);
  }
  return element;
}

/** Creates a button that runs `action` on click. */
export function button(label: string, action: () => void, attributes: Attributes = {}): HTMLButtonElement {
  const element = h('button', { type: 'button', ...attributes }, label);
  element.addEventListener('click', action);
  return element;
}

/** Creates a definition list from label and value pairs. */
export function fields(items: [string, Child | Child[]][]): HTMLDListElement {
  const list = h('dl', { class: 'fields' });
  for (const [label, value] of items) {
    list.append(h('dt', {}, label), h('dd', {}, ...(Array.isArray(value) ? value : [value])));
  }
  return list;
}

/**
 * Replaces the main region with a new screen whose first child is its h1,
 * and moves focus to the heading so screen readers announce the change.
 */
export function showScreen(title: string, ...content: Child[]): HTMLElement {
  const main = document.getElementById('main');
  if (main === null) throw new Error('index.html has no #main element');
  const heading = h('h1', { tabindex: '-1' }, title);
  main.replaceChildren(heading, ...content.filter((child): child is Node | string => child !== null && child !== undefined && child !== false));
  document.title = `${title} · Stillvault approver`;
  heading.focus();
  return main;
}

/** Announces a short text through the polite live region. */
export function announce(text: string): void {
  const region = document.getElementById('announcer');
  if (region === null) return;
  region.textContent = '';
  // A new text node after clearing makes screen readers read repeated messages too.
  window.setTimeout(() => { region.textContent = text; }, 50);
}

/** Creates a notice box; kind 'error' is announced at once (role=alert). */
export function notice(kind: 'info' | 'ok' | 'error', ...children: Child[]): HTMLDivElement {
  return h('div', { class: kind === 'info' ? 'notice' : `notice ${kind}`, role: kind === 'error' ? 'alert' : undefined }, ...children);
}
