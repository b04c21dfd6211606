// Stands in for the Node 'ws' package in the browser bundle. The app never
// calls BrokerClient.connect(); it opens the browser's own WebSocket instead.
// eslint-disable-next-line @typescript-eslint/no-extraneous-class -- it must be constructible like the ws class it replaces
export default class WebSocketUnavailable {
  constructor() {
    throw new Error('the Node ws package is not available in the browser; use the live connection in src/web/app/live.ts');
  }
}
