import { randomUUID } from 'node:crypto';
import type { NotifyConfig } from '../config/config.js';
import { type NotifyEvent, webhookKey } from '../config/notify-config.js';
import type { AgentInfo } from '../pool/stories.js';
import type { DeliveryRecord } from '../store/state-store.js';
import { redactedUrl, storyLink, webhookBody } from './webhook-message.js';

/** What a story's latest run has been reported as. */
interface Reported {
  run: number;
  waitingFor: string | undefined;
  ended: boolean;
}

/** The events a status ends a run with. */
const ENDINGS: Readonly<Record<string, NotifyEvent>> = { COMPLETED: 'completed', FAILED: 'failed', STOPPED: 'stopped' };

/**
 * Decides which changes of a story are worth a notification, and writes the deliveries
 * that report them: `waiting` once per wait (the agent starts waiting for an approval or a
 * message; more requests while it waits are the same wait), and a run's end once. It
 * keeps, per story, what its latest run was last reported as; the deliveries it returns
 * are the outbox rows the caller stores with the change.
 */
export class StoryNotifications {
  readonly #reported = new Map<string, Reported>();

  /**
   * The deliveries that report how `agent` changed since it was last seen, one per event
   * and webhook that takes it; none when nothing new happened or no webhook is configured.
   * @param env where the variables url_env names are read (for the listed, redacted URL).
   */
  deliveries(agent: AgentInfo, notify: NotifyConfig, env: NodeJS.ProcessEnv, now = new Date()): DeliveryRecord[] {
    if (notify.webhook.length === 0) return [];
    const latest = agent.runs.at(-1);
    if (!latest) return [];
    let reported = this.#reported.get(agent.storyId);
    if (reported?.run !== latest.number) {
      reported = { run: latest.number, waitingFor: undefined, ended: false };
      this.#reported.set(agent.storyId, reported);
    }
    const events: NotifyEvent[] = [];
    if (agent.waitingFor !== undefined && agent.waitingFor !== reported.waitingFor) events.push('waiting');
    reported.waitingFor = agent.waitingFor;
    const ending = ENDINGS[agent.status];
    if (ending !== undefined && !reported.ended) {
      events.push(ending);
      reported.ended = true;
    }
    const deliveries: DeliveryRecord[] = [];
    for (const event of events) {
      for (const hook of notify.webhook) {
        if (!hook.on.includes(event)) continue;
        const id = randomUUID();
        const approval = event === 'waiting' && agent.waitingFor === 'APPROVAL' ? agent.pendingApprovals[0] : undefined;
        const body = webhookBody(
          {
            id,
            event,
            storyId: agent.storyId,
            title: agent.title,
            status: agent.status,
            waitingFor: event === 'waiting' ? agent.waitingFor : undefined,
            run: latest.number,
            agent: agent.agent,
            costUsd: agent.costUsd,
            error: agent.status === 'FAILED' ? agent.error : undefined,
            at: now,
            link: storyLink(notify.public_url, agent.storyId),
            approval: approval && { requestId: approval.requestId, tool: approval.tool },
          },
          hook.format,
        );
        deliveries.push({
          id,
          hook: webhookKey(hook),
          url: hook.url !== '' ? redactedUrl(hook.url) : env[hook.url_env] ? redactedUrl(env[hook.url_env]!) : `(${hook.url_env} is not set)`,
          event,
          storyId: agent.storyId,
          body,
          status: 'PENDING',
          attempts: 0,
          lastStatus: undefined,
          lastError: undefined,
          createdAt: now,
          nextAttemptAt: now,
          deliveredAt: undefined,
        });
      }
    }
    return deliveries;
  }
}
