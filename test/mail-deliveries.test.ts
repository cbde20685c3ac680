import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { migrateState } from '../db/migrate.js';
import {
  claimDelivery,
  markRejected,
  markSent,
  readDeliveries,
  releaseClaim,
  type DeliveryClaim,
} from '../jobs/mailer/deliveries.js';
import { useTestDatabase } from './support/database.js';

const db = useTestDatabase();

beforeAll(async () => {
  await migrateState(db.pool);
});

async function row(requestId: string, recipient: string) {
  const { rows } = await db.pool.query(
    `SELECT status, attempts, claim_token IS NOT NULL AS claimed, smtp_response, message_id, last_error, sent_at IS NOT NULL AS has_sent_at
       FROM audit_export_deliveries WHERE request_id = $1 AND recipient = $2`,
    [requestId, recipient],
  );
  return rows[0];
}

async function claimed(requestId: string, recipient: string, leaseMs = 60_000): Promise<DeliveryClaim> {
  const result = await claimDelivery(db.pool, requestId, recipient, { leaseMs });
  if (!result.claimed) throw new Error(`expected a claim, got ${result.status}`);
  return result.claim;
}

describe('delivery claims', () => {
  it('claims a new recipient once; a second claim under a live lease is refused', async () => {
    const claim = await claimed('req-1', 'a@example.com');
    expect(claim).toMatchObject({ requestId: 'req-1', recipient: 'a@example.com', attempt: 1, tookOver: false });
    expect(await claimDelivery(db.pool, 'req-1', 'a@example.com', { leaseMs: 60_000 })).toEqual({ claimed: false, status: 'sending' });
    expect(await row('req-1', 'a@example.com')).toMatchObject({ status: 'sending', attempts: 1, claimed: true });
  });

  it('gives exactly one of 12 concurrent claimers the recipient', async () => {
    const results = await Promise.all(
      Array.from({ length: 12 }, () => claimDelivery(db.pool, 'req-race', 'race@example.com', { leaseMs: 60_000 })),
    );
    expect(results.filter((result) => result.claimed)).toHaveLength(1);
    expect(results.filter((result) => !result.claimed && result.status === 'sending')).toHaveLength(11);
  });

  it('records sent with the reply and message id; a sent recipient is never claimed again', async () => {
    const claim = await claimed('req-2', 'b@example.com');
    expect(await markSent(db.pool, claim, { response: '250 Ok: queued as X1', messageId: '<m1@example.com>' })).toBe('recorded');
    expect(await row('req-2', 'b@example.com')).toMatchObject({
      status: 'sent',
      attempts: 1,
      claimed: false,
      smtp_response: '250 Ok: queued as X1',
      message_id: '<m1@example.com>',
      has_sent_at: true,
    });
    expect(await claimDelivery(db.pool, 'req-2', 'b@example.com', { leaseMs: 1 })).toEqual({ claimed: false, status: 'sent' });
    expect(await markSent(db.pool, claim, { response: '250 again', messageId: '<m1@example.com>' })).toBe('already-sent');
    expect(await releaseClaim(db.pool, claim, 'late failure')).toBe(false);
    expect((await row('req-2', 'b@example.com'))?.status).toBe('sent');
  });

  it('records a permanent rejection, which is never claimed again', async () => {
    const claim = await claimed('req-3', 'c@example.com');
    expect(await markRejected(db.pool, claim, '550 5.1.1 mailbox unavailable')).toBe(true);
    expect(await row('req-3', 'c@example.com')).toMatchObject({ status: 'rejected', claimed: false, smtp_response: '550 5.1.1 mailbox unavailable' });
    expect(await claimDelivery(db.pool, 'req-3', 'c@example.com', { leaseMs: 1 })).toEqual({ claimed: false, status: 'rejected' });
  });

  it('releases a claim after a transient failure, so the next claim gets it at once', async () => {
    const first = await claimed('req-4', 'd@example.com');
    expect(await releaseClaim(db.pool, first, 'ECONNECTION: connection refused')).toBe(true);
    expect(await row('req-4', 'd@example.com')).toMatchObject({ status: 'pending', claimed: false, last_error: 'ECONNECTION: connection refused' });
    const second = await claimed('req-4', 'd@example.com');
    expect(second).toMatchObject({ attempt: 2, tookOver: false });
    expect(second.token).not.toBe(first.token);
  });

  it('takes over a claim older than the lease; the late first holder can no longer release it, but its 250 still counts', async () => {
    const first = await claimed('req-5', 'e@example.com', 50);
    expect(await claimDelivery(db.pool, 'req-5', 'e@example.com', { leaseMs: 60_000 })).toEqual({ claimed: false, status: 'sending' });
    await sleep(80);
    const second = await claimed('req-5', 'e@example.com', 50);
    expect(second).toMatchObject({ attempt: 2, tookOver: true });
    expect(await releaseClaim(db.pool, first, 'too late')).toBe(false);
    expect(await row('req-5', 'e@example.com')).toMatchObject({ status: 'sending', claimed: true });
    expect(await markSent(db.pool, first, { response: '250 late', messageId: '<m5@example.com>' })).toBe('recorded-without-claim');
    expect(await markSent(db.pool, second, { response: '250 second', messageId: '<m5@example.com>' })).toBe('already-sent');
    expect(await row('req-5', 'e@example.com')).toMatchObject({ status: 'sent', smtp_response: '250 late' });
  });

  it('reads the statuses of the recipients asked about', async () => {
    await claimed('req-6', 'f@example.com');
    const sent = await claimed('req-6', 'g@example.com');
    await markSent(db.pool, sent, { response: '250 ok', messageId: '<m6@example.com>' });
    const states = await readDeliveries(db.pool, 'req-6', ['f@example.com', 'g@example.com', 'h@example.com']);
    expect(Object.fromEntries(states)).toEqual({ 'f@example.com': 'sending', 'g@example.com': 'sent' });
  });

  it('refuses a lease that is not a whole number of milliseconds and an empty recipient', async () => {
    await expect(claimDelivery(db.pool, 'req-7', 'i@example.com', { leaseMs: 0 })).rejects.toThrow(
      'Expected `leaseMs` to be a whole number of milliseconds from 1 up, got 0',
    );
    await expect(claimDelivery(db.pool, 'req-7', 'i@example.com', { leaseMs: 1.5 })).rejects.toThrow(TypeError);
    await expect(claimDelivery(db.pool, 'req-7', '', { leaseMs: 1000 })).rejects.toThrow('Expected `recipient` to be a non-empty string, got ""');
  });
});
