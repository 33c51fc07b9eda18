import { describe, expect, it } from 'vitest';
import { assertValidStoryId, InvalidStoryIdError, storyIdProblem } from '../../src/worktree/story-id.js';

describe('story ids', () => {
  it.each(['S-1', 'a', 'JIRA-1234', 'feature_x.y', 'v1.2-rc_3', 'x'.repeat(64), 'a.b', 'lock', 'x.locks'])(
    'accepts %s',
    (id) => {
      expect(storyIdProblem(id)).toBeUndefined();
      expect(() => assertValidStoryId(id)).not.toThrow();
    },
  );

  it.each([
    ['../x', 'it contains "/"'],
    ['-b', 'it starts with "-"'],
    ['.hidden', 'it starts with "."'],
    ['a/b', 'it contains "/"'],
    ['', 'it is empty'],
    ['x'.repeat(65), 'it is 65 characters long'],
    ['has space', 'it contains " "'],
    ['émoji', 'it contains "é"'],
    ['..', 'it starts with "."'],
    ['a..b', 'it contains ".."'],
    ['x.lock', 'it ends with ".lock"'],
    ['x.', 'it ends with "."'],
    ['a;rm -rf ~', 'it contains ";"'],
    ['$(id)', 'it contains "$"'],
    ['a\nb', 'it contains "\\n"'],
    ['a~1', 'it contains "~"'],
    ['a^b', 'it contains "^"'],
    ['a:b', 'it contains ":"'],
  ])('rejects %j: %s', (id, reason) => {
    expect(storyIdProblem(id)).toBe(reason);
    let thrown: unknown;
    try {
      assertValidStoryId(id);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidStoryIdError);
    expect((thrown as InvalidStoryIdError).code).toBe('INVALID_STORY_ID');
    expect((thrown as Error).message).toContain(reason);
  });
});
