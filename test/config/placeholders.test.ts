import { describe, expect, it } from 'vitest';
import { renderTemplate, unknownPlaceholders } from '../../src/config/placeholders.js';

const values = {
  story_id: 'S-1',
  worktree_path: '/p/.agent-pool/worktrees/S-1',
  branch: 'story/S-1',
  project_root: '/p',
};

describe('placeholders', () => {
  it('renders every placeholder, as often as it appears', () => {
    expect(
      renderTemplate('{{story_id}} in {{worktree_path}} on {{branch}} of {{project_root}}; again {{story_id}}', values),
    ).toBe('S-1 in /p/.agent-pool/worktrees/S-1 on story/S-1 of /p; again S-1');
  });

  it('allows spaces inside the braces', () => {
    expect(renderTemplate('{{ story_id }}', values)).toBe('S-1');
  });

  it('leaves text without placeholders unchanged, including single braces and $()', () => {
    expect(renderTemplate('echo {a} $(whoami) }}{{', values)).toBe('echo {a} $(whoami) }}{{');
  });

  it('does not render placeholders that appear inside values', () => {
    expect(renderTemplate('{{story_id}}', { ...values, story_id: '{{branch}}' })).toBe('{{branch}}');
  });

  it('lists unknown placeholders and accepts known ones', () => {
    expect(unknownPlaceholders('{{story_id}} {{nope}} {{}} {{branch}}')).toEqual(['nope', '']);
    expect(unknownPlaceholders('{{project_root}}/x')).toEqual([]);
  });

  it('refuses to render an unknown placeholder', () => {
    expect(() => renderTemplate('{{nope}}', values)).toThrow('unknown placeholder {{nope}}');
  });
});
