import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { expect, onTestFinished } from 'vitest';

/**
 * The MCP SDK's own client, connected over `transport`, closed when the test ends. It lists
 * the tools once, so that the SDK checks every tool's structured result against the tool's
 * output schema.
 */
export async function connectMcp(transport: Transport): Promise<Client> {
  const client = new Client({ name: 'agent-pool-tests', version: '1.0.0' });
  await client.connect(transport);
  onTestFinished(() => client.close());
  await client.listTools();
  return client;
}

/** The SDK's client over streamable HTTP at `origin`/mcp with `token`. */
export function mcpOverHttp(origin: string, token: string | undefined): Promise<Client> {
  return connectMcp(
    new StreamableHTTPClientTransport(new URL('/mcp', origin), {
      requestInit: { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } },
    }),
  );
}

/** Calls a tool that must succeed; its structured content, checked to be the same JSON as its text. */
export async function callTool<T = Record<string, unknown>>(client: Client, name: string, args: Record<string, unknown> = {}): Promise<T> {
  const result = (await client.callTool({ name, arguments: args }, undefined, { timeout: 90_000 })) as CallToolResult;
  const text = result.content.map((block) => (block.type === 'text' ? block.text : '')).join('');
  expect(result.isError, text).toBeFalsy();
  expect(JSON.parse(text)).toEqual(result.structuredContent);
  return result.structuredContent as T;
}

/** Calls a tool that must fail; its error text (the contract's code first). */
export async function toolError(client: Client, name: string, args: Record<string, unknown> = {}): Promise<string> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(result.isError).toBe(true);
  return result.content.map((block) => (block.type === 'text' ? block.text : '')).join('');
}

/** A story as the tools show it. */
export interface McpStory {
  storyId: string;
  status: string;
  waitingFor: string | null;
  startedBy: string | null;
  lastSeq: number;
  [field: string]: unknown;
}

/** Calls wait_story until the story's status is one of `statuses`; the story then. */
export async function waitForStatus(client: Client, storyId: string, statuses: readonly string[]): Promise<McpStory> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const { story } = await callTool<{ changed: boolean; story: McpStory }>(client, 'wait_story', { storyId, timeoutSeconds: 5 });
    if (statuses.includes(story.status)) return story;
  }
  throw new Error(`story ${storyId} never reached ${statuses.join(' or ')}`);
}
