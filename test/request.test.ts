import { describe, expect, it } from 'vitest';
import { parseConversationRequest, parseRangeBound } from '../jobs/conversations/request.js';
import { InvalidRequestError } from '../jobs/errors.js';
import { requestOfStored, storedRequest } from '../jobs/lifecycle/state.js';
import { differingFields, parseExportRequest, requestIdentity } from '../jobs/requests.js';

const valid = { merchantId: '42', from: '2026-09-01', to: '2026-10-31' };

function rejection(input: unknown): InvalidRequestError {
  try {
    parseConversationRequest(input);
  } catch (error) {
    if (error instanceof InvalidRequestError) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('parseConversationRequest', () => {
  it('fills in the defaults', () => {
    const request = parseConversationRequest(valid);
    expect(request).toMatchObject({
      kind: 'conversations',
      merchantId: '42',
      from: { kind: 'date', date: '2026-09-01' },
      to: { kind: 'date', date: '2026-10-31' },
      timezone: undefined,
      filters: { agentIds: [], providers: [], aliases: [], statuses: [] },
      csv: { bom: true, formulaGuard: true, rowsPerFile: 1_000_000 },
    });
    expect(request.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('accepts numbers for ids, deduplicates filters and upper-cases statuses', () => {
    const request = parseConversationRequest({
      ...valid,
      merchantId: 42,
      filters: { agentIds: [7, '7', 8], statuses: ['closed', 'OPENED'], providers: ['whatsapp', 'whatsapp'] },
    });
    expect(request.merchantId).toBe('42');
    expect(request.filters.agentIds).toEqual(['7', '8']);
    expect(request.filters.statuses).toEqual(['CLOSED', 'OPENED']);
    expect(request.filters.providers).toEqual(['whatsapp']);
  });

  it.each([
    [{ ...valid, merchantId: 'abc' }, 'merchantId', /positive whole number/],
    [{ ...valid, merchantId: 0 }, 'merchantId', /positive whole number/],
    [{ ...valid, merchantId: '99999999999999999999' }, 'merchantId', /bigint/],
    [{ ...valid, from: '2026-02-30' }, 'from', /not a calendar date/],
    [{ ...valid, from: '01/09/2026' }, 'from', /YYYY-MM-DD/],
    [{ ...valid, to: '2026-09-01T10:00:00' }, 'to', /with offset/],
    [{ ...valid, to: '2026-09-01T25:00:00Z' }, 'to', /not a valid timestamp/],
    [{ ...valid, from: '2026-10-31', to: '2026-09-01' }, 'from', /not before/],
    [{ ...valid, from: '2026-09-01', to: '2026-09-01' }, 'from', /not before/],
    [{ ...valid, from: '2026-09-01T00:00:00Z', to: '2026-10-31T00:00:01Z' }, 'to', /longer than 60 days/],
    [{ ...valid, timezone: 'Not a zone!' }, 'timezone', /IANA/],
    [{ ...valid, filters: { statuses: ['OPENED', 'PICKED_UP'] } }, 'filters.statuses', /only active chats/],
    [{ ...valid, filters: { statuses: ['OPENED'] } }, 'filters.statuses', /only active chats/],
    [{ ...valid, filters: { statuses: ['DONE'] } }, 'filters.statuses[0]', /OPENED, PICKED_UP, CLOSED/],
    [{ ...valid, filters: { agentIds: ['x'] } }, 'filters.agentIds[0]', /positive whole number/],
    [{ ...valid, filters: { providers: [''] } }, 'filters.providers[0]', /non-empty/],
    [{ ...valid, filters: { colour: ['red'] } }, 'filters.colour', /unknown field/],
    [{ ...valid, csv: { rowsPerFile: 0 } }, 'csv.rowsPerFile', /from 1 to 1048575/],
    [{ ...valid, csv: { rowsPerFile: 2_000_000 } }, 'csv.rowsPerFile', /from 1 to 1048575/],
    [{ ...valid, csv: { bom: 'yes' } }, 'csv.bom', /true or false/],
    [{ ...valid, kind: 'invoices' }, 'kind', /"conversations"/],
    [{ ...valid, requestId: '../etc' }, 'requestId', /letters, digits/],
    [{ ...valid, extra: 1 }, 'extra', /unknown field/],
    ['not an object', 'request', /JSON object/],
  ])('rejects %j naming %s', (input, field, rule) => {
    const error = rejection(input);
    expect(error.field).toBe(field);
    expect(error.message).toMatch(rule);
    expect(error.message.startsWith(`${field}: `)).toBe(true);
  });

  it('validates recipients, drops duplicates ignoring case, and defaults the locale to en', () => {
    const request = parseConversationRequest({
      ...valid,
      recipients: ['Ana@Merchant.TEST', ' ana@merchant.test ', 'bob@merchant.test'],
    });
    expect(request.recipients).toEqual(['Ana@merchant.test', 'bob@merchant.test']);
    expect(request.locale).toBe('en');
    expect(parseConversationRequest({ ...valid, locale: 'pt' }).locale).toBe('pt');
    expect(rejection({ ...valid, recipients: ['a@b.test', 'nope'] }).field).toBe('recipients[1]');
  });

  it('allows exactly 60 x 24 hours between two instants', () => {
    expect(() =>
      parseConversationRequest({ ...valid, from: '2026-09-01T00:00:00-05:00', to: '2026-10-31T00:00:00-05:00' }),
    ).not.toThrow();
  });
});

describe('parseRangeBound', () => {
  it('reads offsets in every ISO form', () => {
    const instants = ['2026-09-01T05:00:00Z', '2026-09-01T00:00:00-05:00', '2026-09-01T00:00-0500', '2026-09-01T10:30:00.5+05:30'];
    const parsed = instants.map((value) => parseRangeBound('from', value));
    expect(parsed.map((bound) => (bound.kind === 'instant' ? bound.epochMs : NaN))).toEqual([
      Date.UTC(2026, 8, 1, 5),
      Date.UTC(2026, 8, 1, 5),
      Date.UTC(2026, 8, 1, 5),
      Date.UTC(2026, 8, 1, 5, 0, 0, 500),
    ]);
  });
});

describe('a request as stored and compared under its request id', () => {
  const documents: Record<string, unknown>[] = [
    { kind: 'conversations', requestId: 'r1', merchantId: 42, from: '2026-09-01', to: '2026-10-31' },
    {
      kind: 'conversations',
      requestId: 'r2',
      merchantId: '42',
      from: '2026-09-01T08:00:00-05:00',
      to: '2026-10-01T00:00:00Z',
      timezone: 'America/Bogota',
      filters: { agentIds: [7, 3], providers: ['whatsapp'], aliases: ['sales'], statuses: ['closed', 'PICKED_UP'] },
      csv: { bom: false, formulaGuard: false, rowsPerFile: 10 },
      recipients: ['Ana@merchant.example', 'bob@merchant.example'],
      locale: 'es',
      requestedBy: { userId: 17, email: 'ops@merchant.example' },
    },
    { kind: 'stop-slots', requestId: 'r3', merchantId: 9, from: '2026-09-01', to: '2026-09-02', botIds: [5], requestedBy: { userId: 'u', email: 'ops@merchant.example' } },
  ];

  it.each(documents.map((doc) => [doc.requestId, doc]))('reads %s back from its stored form as the request it was', (_id, doc) => {
    const request = parseExportRequest(doc);
    expect(requestOfStored(storedRequest(request))).toEqual(request);
    expect(differingFields(request, requestOfStored(storedRequest(request)))).toEqual([]);
  });

  it('names the fields another document asks for differently, in the order of the identity', () => {
    const stored = parseExportRequest(documents[1]);
    const ask = (change: Record<string, unknown>): string[] => differingFields(stored, parseExportRequest({ ...documents[1], ...change }));
    expect(ask({ merchantId: 43, to: '2026-10-02T00:00:00Z' })).toEqual(['merchantId', 'to']);
    expect(ask({ filters: { agentIds: [7] }, csv: { rowsPerFile: 11 } })).toEqual([
      'filters.agentIds',
      'filters.providers',
      'filters.aliases',
      'filters.statuses',
      'csv.bom',
      'csv.formulaGuard',
      'csv.rowsPerFile',
    ]);
    expect(ask({ recipients: ['ana@merchant.example'] })).toEqual(['recipients']);
    // Another kind: compared on the kind and the fields both kinds have.
    const { filters: _filters, csv: _csv, ...common } = documents[1] as Record<string, unknown>;
    expect(differingFields(stored, parseExportRequest({ ...common, kind: 'stop-slots' }))).toEqual(['kind', 'csv.bom', 'csv.formulaGuard']);
  });

  it('takes the same parameters worded otherwise as the same request: offsets, order, case, requester', () => {
    const stored = parseExportRequest(documents[1]);
    const reworded = parseExportRequest({
      ...documents[1],
      from: '2026-09-01T13:00:00Z',
      to: '2026-09-30T19:00:00-05:00',
      filters: { agentIds: ['3', 7, 3], providers: ['whatsapp'], aliases: ['sales'], statuses: ['PICKED_UP', 'CLOSED'] },
      recipients: ['BOB@merchant.example', 'ana@merchant.example', 'Bob@merchant.example'],
      requestedBy: { userId: 'someone-else' },
    });
    expect(differingFields(stored, reworded)).toEqual([]);
    expect(requestIdentity(reworded)).toBe(requestIdentity(stored));
  });

  it('refuses a stored document that is not a request, naming the field', () => {
    expect(() => requestOfStored({ ...storedRequest(parseExportRequest(documents[0])), from: { kind: 'date' } })).toThrow(/^from: /);
  });
});

