// Which option an answer chooses: never more than the person asked for.
import { describe, expect, it } from 'vitest';
import { chooseOption, type PendingApproval } from '../../src/pool/control-session.js';
import { claudeApprovalOptions } from '../../src/pool/events.js';
import { InvalidArgumentError } from '../../src/pool/pool-errors.js';

function request(options: PendingApproval['options']): PendingApproval {
  return { requestId: '1-1', tool: 'write', input: {}, suggestions: null, options, requestedAt: new Date() };
}

describe('chooseOption', () => {
  const onlyAlways = request([
    { id: 'always', name: 'Always allow', kind: 'allow_always' },
    { id: 'no', name: 'Reject', kind: 'reject_once' },
  ]);

  it('does not widen "allow" to "always" where the request offers no allow once', () => {
    expect(() => chooseOption(onlyAlways, { allow: true })).toThrow(InvalidArgumentError);
    expect(() => chooseOption(onlyAlways, { allow: true })).toThrow(
      'request 1-1 offers no option to allow once it; it offers "always" (allow_always), "no" (reject_once): answer with optionId',
    );
    // The honest twins: remember asks for always; the option itself may be named.
    expect(chooseOption(onlyAlways, { allow: true, remember: true }).id).toBe('always');
    expect(chooseOption(onlyAlways, { optionId: 'always' }).id).toBe('always');
    expect(chooseOption(onlyAlways, { allow: false }).id).toBe('no');
  });

  it('takes only an option the request offers', () => {
    expect(() => chooseOption(onlyAlways, { optionId: 'allow_once' })).toThrow(
      'optionId "allow_once" is not an option of request 1-1; it offers "always" (allow_always), "no" (reject_once)',
    );
  });

  it("offers Claude's allow always only with its suggestions", () => {
    expect(claudeApprovalOptions(null).map((option) => option.kind)).toEqual(['allow_once', 'reject_once']);
    expect(claudeApprovalOptions([]).map((option) => option.kind)).toEqual(['allow_once', 'reject_once']);
    expect(claudeApprovalOptions([{ type: 'setMode' }]).map((option) => option.kind)).toEqual(['allow_once', 'allow_always', 'reject_once']);
    const claude = request(claudeApprovalOptions(null));
    expect(() => chooseOption(claude, { optionId: 'allow_always' })).toThrow(InvalidArgumentError);
    expect(chooseOption(claude, { allow: true, remember: true }).id).toBe('allow_once');
  });
});
