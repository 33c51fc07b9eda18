import path from 'node:path';
import { onTestFinished } from 'vitest';
import { type FakeAnthropic, startFakeAnthropic, type Turn } from '../fixtures/fake-anthropic.js';
import { startTestServer, type TestServer } from './server.js';
import { tempDir } from './temp.js';

/**
 * agent-pool.toml whose agent is the real Claude Code CLI pointed at the fake API, only
 * through [agent] env, with a HOME of its own; `agentLines` are more keys of [agent].
 */
export function claudeConfig(api: FakeAnthropic, agentLines: readonly string[] = []): string {
  const home = tempDir('claude-home-');
  const env = {
    ANTHROPIC_BASE_URL: api.url,
    ANTHROPIC_API_KEY: 'sk-ant-api03-agent-pool-test-key',
    IS_SANDBOX: '1',
    HOME: home,
    CLAUDE_CONFIG_DIR: path.join(home, '.claude'),
    // No traffic but the model's: no update checks, telemetry or error reports.
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
    // 2.1.197 honours it (its api_retry events say max_retries: 2): failures end quickly.
    CLAUDE_CODE_MAX_RETRIES: '2',
  };
  const table = Object.entries(env)
    .map(([name, value]) => `${name} = ${JSON.stringify(value)}`)
    .join(', ');
  return ['[agent]', 'command = "claude"', `env = { ${table} }`, ...agentLines, '', '[pool]', 'stop_grace_seconds = 2', ''].join('\n');
}

/**
 * A server whose agent is the real Claude Code (the one agent-pool resolves itself, from
 * its own node_modules/.bin) and a fake model API that answers with `turns`.
 */
export async function claudeServer(
  options: { agentLines?: readonly string[] },
  ...turns: Turn[]
): Promise<{ api: FakeAnthropic; server: TestServer }> {
  const api = await startFakeAnthropic();
  onTestFinished(() => api.close());
  api.script(...turns);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: '/usr/local/bin:/usr/bin:/bin' };
  const server = await startTestServer({ toml: claudeConfig(api, options.agentLines), env });
  return { api, server };
}
