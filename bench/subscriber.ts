// A separate process that plays the subscribers of a benchmark, so that the server under
// test has its own core. It opens N graphql-ws connections, each with one agentEvents
// subscription (one per story named, a story named several times has several), and reports
// on stdout (one JSON line) what each received and when, in process.hrtime nanoseconds
// (CLOCK_MONOTONIC, the same clock in every process).
//   node subscriber.js '{"url": "...", "token": "...", "storyIds": ["a", "a", "b"],
//                        "stalled": 0, "untilSeq": 123, "ticks": false}'
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

interface Options {
  url: string;
  token: string | null;
  /** One subscriber per entry, to that story's events, in this order. */
  storyIds: string[];
  /** Connections that subscribe (to the first story) and then never read their socket. */
  stalled: number;
  /** Stop once this seq (or a terminal event) has arrived. */
  untilSeq: number | null;
  /** Collect the delay of tick events ({"type":"tick","t":ns}). */
  ticks: boolean;
}

const QUERY = `subscription ($storyId: ID!) {
  agentEvents(storyId: $storyId) {
    __typename seq storyId run at
    ... on AgentStatusEvent { status }
    ... on AgentOutputEvent { text }
    ... on AgentJsonEvent { data }
    ... on AgentDoneEvent { sessionId exitCode }
    ... on AgentErrorEvent { message }
  }
}`;

/** What one subscriber received, printed as JSON for the bench. */
export interface Received {
  count: number;
  firstNs: string;
  lastNs: string;
  lastSeq: number;
  delaysMs: number[];
}

async function subscribe(options: Options, storyId: string): Promise<Received> {
  const client = createClient({
    url: options.url.replace('http', 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: options.token ? { authorization: `Bearer ${options.token}` } : {},
    retryAttempts: 0,
  });
  const received: Received = { count: 0, firstNs: '0', lastNs: '0', lastSeq: 0, delaysMs: [] };
  for await (const result of client.iterate({ query: QUERY, variables: { storyId } })) {
    const now = process.hrtime.bigint();
    if (result.errors) throw new Error(`the subscription failed: ${result.errors.map((error) => error.message).join('; ')}`);
    const event = (result.data as { agentEvents: { __typename: string; seq: number; data?: { type?: string; t?: string } } })
      .agentEvents;
    if (received.count === 0) received.firstNs = String(now);
    received.count++;
    received.lastNs = String(now);
    received.lastSeq = event.seq;
    if (options.ticks && event.data?.type === 'tick') received.delaysMs.push(Number(now - BigInt(event.data.t!)) / 1e6);
    const terminal = event.__typename === 'AgentDoneEvent' || event.__typename === 'AgentErrorEvent';
    if (terminal || (options.untilSeq !== null && event.seq >= options.untilSeq)) break;
  }
  await client.dispose();
  return received;
}

/** A connection that subscribes and then stops reading: its server must not buffer for it. */
function stall(options: Options): WebSocket {
  const socket = new WebSocket(options.url.replace('http', 'ws'), 'graphql-transport-ws');
  socket.on('open', () => {
    socket.send(JSON.stringify({ type: 'connection_init', payload: options.token ? { authorization: `Bearer ${options.token}` } : {} }));
  });
  socket.on('message', (data) => {
    if (JSON.parse(String(data)).type !== 'connection_ack') return;
    socket.send(JSON.stringify({ id: 'stalled', type: 'subscribe', payload: { query: QUERY, variables: { storyId: options.storyIds[0] } } }));
    // Stop reading: the kernel buffers fill and the server has to wait.
    (socket as unknown as { _socket: { pause(): void } })._socket.pause();
  });
  return socket;
}

const options = JSON.parse(process.argv[2]!) as Options;
const stalled = Array.from({ length: options.stalled }, () => stall(options));
const results = await Promise.all(options.storyIds.map((storyId) => subscribe(options, storyId)));
process.stdout.write(`${JSON.stringify(results)}\n`);
for (const socket of stalled) socket.terminate();
process.exit(0);
