// A bounded fuzzing pass of malformed HTTP and WebSocket input against the real server
// (`agent-pool serve`, loopback only), from a fixed seed so that a failure can be replayed.
// The server must answer a plain query afterwards, still be running, and not have flooded
// its log with stack traces.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { runCli, serverUrl } from '../support/cli.js';
import { sendRaw } from '../support/raw-http.js';
import { tempRepo } from '../support/temp.js';

/** mulberry32: a small seeded generator, so that every run sends the same input. */
function generator(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HTTP_CASES = 300;
const WS_CASES = 120;

describe('fuzzing', () => {
  it(`survives ${HTTP_CASES} malformed HTTP requests and ${WS_CASES} malformed WebSocket sessions, then answers`, async () => {
    const random = generator(15);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const bytes = (max: number): Buffer => Buffer.from(Array.from({ length: Math.floor(random() * max) }, () => Math.floor(random() * 256)));

    const root = tempRepo();
    const env = { ...process.env };
    delete env.AGENT_POOL_TOKEN;
    const cli = runCli(['serve', '--port', '0'], { cwd: root, env });
    const url = await serverUrl(cli);
    const port = Number(url.port);
    const token = url.searchParams.get('token')!;
    const host = `127.0.0.1:${port}`;

    const methods = ['GET', 'POST', 'PUT', 'OPTIONS', 'HEAD', 'DELETE', 'PATCH', 'CONNECT', 'X', ''];
    const targets = [
      '/', '/graphql', '//graphql', '//a:b:c/', '/graphql/', 'http://evil/graphql', '*', 'evil:80', '/stories/%E0%A4%A',
      '/assets/../../etc/passwd', '/health?x=/graphql', `/graphql?query=${'{'.repeat(500)}`, '/%00', '/graphql?token=x',
    ];
    const headers = [
      `Host: ${host}`, 'Host: evil.example', 'Origin: http://evil.example', 'Origin: null', `Authorization: Bearer ${'x'.repeat(8000)}`,
      'Authorization: Bearer', `Authorization: Bearer ${token}`, 'Content-Type: application/json', 'Content-Type: text/plain',
      'Content-Length: 5', 'Content-Length: -1', 'Content-Length: 99999999999', 'Transfer-Encoding: chunked',
      'Accept: text/html', 'Accept: text/event-stream', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Protocol: graphql-transport-ws', 'X: \u00ff\u00fe',
    ];
    const bodies = [
      '', '{', '{"query":"{ agents { storyId } }"}', '{"query":"mutation { startAgent(storyId: \\"F-1\\") { status } }"}',
      '{"query":null}', '[]', '{"query":"{ __typename }","variables":"x"}', 'query=%7B', '0\r\n\r\n', 'zz\r\nxx\r\n',
    ];

    const sends: Array<Promise<string>> = [];
    for (let i = 0; i < HTTP_CASES; i++) {
      let request: Buffer;
      if (random() < 0.15) {
        request = bytes(400); // noise
      } else {
        const lines = [`${pick(methods)} ${pick(targets)} ${pick(['HTTP/1.1', 'HTTP/1.0', 'HTTP/9', ''])}`];
        const count = Math.floor(random() * 6);
        for (let h = 0; h < count; h++) lines.push(pick(headers));
        if (random() < 0.8) lines.push(`Host: ${host}`);
        const text = `${lines.join(pick(['\r\n', '\n', '\r\n']))}\r\n\r\n${pick(bodies)}`;
        request = Buffer.from(random() < 0.2 ? text.slice(0, Math.floor(random() * text.length)) : text, 'latin1');
      }
      sends.push(sendRaw(port, request, 300));
      if (sends.length >= 20) await Promise.all(sends.splice(0));
    }
    await Promise.all(sends);

    for (let i = 0; i < WS_CASES; i++) {
      await new Promise<void>((resolve) => {
        const socket = new WebSocket(`ws://${host}/graphql`, 'graphql-transport-ws');
        const finish = (): void => {
          socket.terminate();
          resolve();
        };
        const timer = setTimeout(finish, 500);
        socket.on('open', () => {
          const kind = random();
          const raw = (socket as unknown as { _socket: import('node:net').Socket })._socket;
          if (kind < 0.3) {
            raw.write(bytes(64)); // frames that are not frames
          } else if (kind < 0.5) {
            socket.send(bytes(200)); // binary garbage
          } else {
            const messages = [
              { type: 'connection_init', payload: { authorization: pick([`Bearer ${token}`, 'Bearer x', 42, null]) } },
              { type: 'subscribe', id: pick(['1', '', 1, null]), payload: { query: pick(['{ agents { storyId } }', '{', 'subscription { agentEvents(storyId: "../x") { seq } }']) } },
              { type: pick(['complete', 'ping', 'pong', 'next', 'bogus']), id: '1' },
              'not json',
            ];
            for (let m = 0; m < 4; m++) {
              const message = pick(messages);
              socket.send(typeof message === 'string' ? message : JSON.stringify(message));
            }
          }
        });
        socket.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
        socket.on('error', () => undefined);
      });
    }

    // Still running, and answering.
    expect(cli.child.exitCode).toBeNull();
    const response = await fetch(`${url.origin}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(await response.json()).toEqual({ data: { __typename: 'Query' } });
    // No stack trace per bad frame or request: the log stays short.
    const stackLines = cli.stderr().split('\n').filter((line) => /^\s+at /.test(line));
    expect(stackLines.length).toBeLessThan(20);
    expect(cli.stderr().split('\n').length).toBeLessThan(100);
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
  }, 120_000);
});
