import { describe, expect, it } from 'vitest';
import { repoFromRemoteUrl } from '../../src/forge/remote-url.js';

describe('repoFromRemoteUrl', () => {
  it.each([
    ['git@github.com:owner/name.git', 'owner/name'],
    ['git@github.com:owner/name', 'owner/name'],
    ['github.com:owner/name.git', 'owner/name'],
    ['https://github.com/owner/name.git', 'owner/name'],
    ['https://github.com/owner/name', 'owner/name'],
    ['https://github.com/owner/name/', 'owner/name'],
    ['https://github.com/owner/name.git/', 'owner/name'],
    ['http://ghe.example.com/owner/name.git', 'owner/name'],
    ['https://x-access-token:secret@github.com/owner/name.git', 'owner/name'],
    ['ssh://git@github.com/owner/name.git', 'owner/name'],
    ['ssh://git@ssh.github.com:443/owner/name.git', 'owner/name'],
    ['ssh://git@gitlab.example.com:2222/group/sub/name.git', 'group/sub/name'],
    ['git+ssh://git@github.com/owner/name.git', 'owner/name'],
    ['git://github.com/owner/name.git', 'owner/name'],
    ['git@gitlab.com:group/subgroup/name.git', 'group/subgroup/name'],
    ['https://gitlab.com/group/subgroup/deeper/name.git', 'group/subgroup/deeper/name'],
    ['git@github.com:/owner/name.git', 'owner/name'],
    ['  git@github.com:owner/name.git\n', 'owner/name'],
    ['https://github.com/owner/my%20name', 'owner/my name'],
    ['git@github.com:owner/name.github.io.git', 'owner/name.github.io'],
  ])('finds the repository in %s', (url, repo) => {
    expect(repoFromRemoteUrl(url)).toBe(repo);
  });

  it.each([
    ['/home/me/repos/name.git'],
    ['../name'],
    ['./owner/name'],
    ['name'],
    ['file:///srv/git/owner/name.git'],
    ['C:/repos/owner/name'],
    ['https://github.com/name.git'],
    ['https://github.com/'],
    ['git@github.com:name.git'],
    ['git@github.com:~me/name.git'],
    ['https://github.com/owner//name'],
    ['https://github.com/owner/../name'],
    ['https://[bad'],
    [''],
  ])('finds none in %s', (url) => {
    expect(repoFromRemoteUrl(url)).toBeUndefined();
  });
});
