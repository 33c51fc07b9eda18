import type { DeliveryRecord } from '../store/state-store.js';
import { builder } from './builder.js';

/** The DeliveryStatus enum. */
export const DeliveryStatusEnum = builder.enumType('DeliveryStatus', {
  description: 'Where a webhook delivery stands.',
  values: {
    PENDING: { description: 'Not made yet: waiting for its turn, or for its next attempt after a failure.' },
    DELIVERED: { description: 'The receiver answered 2xx.' },
    FAILED: { description: 'Given up: an answer that is not retried (a 4xx but 429), or no success for [notify] give_up_after_seconds.' },
  } as const,
});

/** The WebhookDelivery type: one row of the outbox. */
export const WebhookDeliveryRef = builder.objectRef<DeliveryRecord>('WebhookDelivery').implement({
  description: 'One notification sent (or to be sent) to one [[notify.webhook]]: a change of a story, and what became of it.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The delivery id, in X-Agent-Pool-Delivery and the body: receivers dedupe by it.' }),
    url: t.exposeString('url', { description: 'The receiver\'s address with its path and query redacted (they may hold a secret).' }),
    event: t.exposeString('event', { description: 'waiting, completed, failed or stopped.' }),
    storyId: t.exposeID('storyId', { description: 'The story it reports.' }),
    attempts: t.exposeInt('attempts', { description: 'How many times it was sent.' }),
    status: t.field({ type: DeliveryStatusEnum, description: 'Where it stands.', resolve: (delivery) => delivery.status }),
    lastStatus: t.int({
      nullable: true,
      description: 'The HTTP status of the receiver\'s last answer; null before one, or when the last attempt got none (no connection, a timeout).',
      resolve: (delivery) => delivery.lastStatus ?? null,
    }),
    lastError: t.string({
      nullable: true,
      description: 'What went wrong the last time; null once delivered.',
      resolve: (delivery) => delivery.lastError ?? null,
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When the change it reports happened.' }),
    deliveredAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the receiver took it.',
      resolve: (delivery) => delivery.deliveredAt ?? null,
    }),
  }),
});
