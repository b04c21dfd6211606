/** Counters for GET /metrics, kept in memory and reset when the process restarts. */
export class Metrics {
  readonly requestsByState = new Map<string, number>();
  readonly errorsByCode = new Map<string, number>();
  httpRequests = 0;

  countRequestState(state: string): void {
    this.requestsByState.set(state, (this.requestsByState.get(state) ?? 0) + 1);
  }

  countError(code: string): void {
    this.errorsByCode.set(code, (this.errorsByCode.get(code) ?? 0) + 1);
  }

  /** Renders the Prometheus text exposition format (version 0.0.4). */
  render(pending: number, connected: Record<string, number>): string {
    const lines: string[] = [
      '# HELP stillvault_broker_requests_total Requests that reached each state.',
      '# TYPE stillvault_broker_requests_total counter',
    ];
    for (const [state, count] of this.requestsByState) lines.push(`stillvault_broker_requests_total{state="${state}"} ${count}`);
    lines.push(
      '# HELP stillvault_broker_pending_requests Requests waiting for a decision, all orgs.',
      '# TYPE stillvault_broker_pending_requests gauge',
      `stillvault_broker_pending_requests ${pending}`,
      '# HELP stillvault_broker_connected_clients Authenticated WebSocket connections.',
      '# TYPE stillvault_broker_connected_clients gauge',
    );
    for (const [role, count] of Object.entries(connected)) lines.push(`stillvault_broker_connected_clients{role="${role}"} ${count}`);
    lines.push('# HELP stillvault_broker_errors_total Error responses and handled errors by code.', '# TYPE stillvault_broker_errors_total counter');
    for (const [code, count] of this.errorsByCode) lines.push(`stillvault_broker_errors_total{code="${code}"} ${count}`);
    lines.push(
      '# HELP stillvault_broker_http_requests_total HTTP requests handled.',
      '# TYPE stillvault_broker_http_requests_total counter',
      `stillvault_broker_http_requests_total ${this.httpRequests}`,
    );
    return lines.join('\n') + '\n';
  }
}
