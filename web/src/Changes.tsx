import { useState } from 'react';
import { useQuery } from 'urql';
import { errorMessage, FILE_DIFF, formatTime, STORY_WORK } from './api.js';
import { useRefreshWhenMoved } from './refresh-when-moved.js';

/**
 * The Changes region: what the story changed against its base commit (files with their
 * added and removed lines, each file's diff on demand) and the commits on its branch.
 * Read again when the story moves (`version`), at most every two seconds.
 */
export function Changes({ storyId, version, archived }: { storyId: string; version: string; archived: boolean }) {
  const [work, refresh] = useQuery({
    query: STORY_WORK,
    variables: { storyId },
    requestPolicy: 'network-only',
  });
  const [selected, setSelected] = useState<string | undefined>();

  useRefreshWhenMoved(version, refresh);

  const agent = work.data?.agent;
  const changes = agent?.changes;
  return (
    <section className="changes" aria-label="Changes">
      <h2>
        Changes{' '}
        {changes && (
          <small>
            {changes.filesChanged} {changes.filesChanged === 1 ? 'file' : 'files'} · <span className="added">+{changes.linesAdded}</span>{' '}
            <span className="removed">−{changes.linesRemoved}</span>
          </small>
        )}
      </h2>
      {work.error && <p className="error">{errorMessage(work.error)}</p>}
      {!changes ? (
        <p className="empty">{work.fetching ? 'Loading…' : archived ? 'Archived: its worktree was removed.' : 'No worktree yet.'}</p>
      ) : changes.files.length === 0 ? (
        <p className="empty">No change against the base commit.</p>
      ) : (
        <ul className="files">
          {changes.files.map((file) => (
            <li key={file.path}>
              <button
                type="button"
                className="link"
                aria-expanded={selected === file.path}
                onClick={() => setSelected(selected === file.path ? undefined : file.path)}
              >
                <span className={`change change-${file.kind.toLowerCase()}`}>{file.kind.toLowerCase()}</span>{' '}
                {/* Names the agent chose, isolated: one cannot reorder the counts beside it. */}
                <span className="mono">
                  {file.oldPath !== null && (
                    <>
                      <bdi>{file.oldPath}</bdi> →{' '}
                    </>
                  )}
                  <bdi>{file.path}</bdi>
                </span>{' '}
                <span className="added">+{file.linesAdded}</span> <span className="removed">−{file.linesRemoved}</span>
              </button>
              {selected === file.path && <FileDiff storyId={storyId} path={file.path} version={version} />}
            </li>
          ))}
        </ul>
      )}
      {agent && agent.commits.length > 0 && (
        <>
          <h3>Commits on the branch</h3>
          <ul className="commits">
            {agent.commits.map((commit) => (
              <li key={commit.hash}>
                <span className="mono">{commit.hash.slice(0, 8)}</span> <bdi>{commit.subject}</bdi>{' '}
                <small>
                  {commit.author}, {formatTime(commit.committedAt)}
                </small>
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

/** One file's unified diff, its lines coloured by what they are. */
function FileDiff({ storyId, path, version }: { storyId: string; path: string; version: string }) {
  const [diff, refresh] = useQuery({
    query: FILE_DIFF,
    variables: { storyId, path },
    requestPolicy: 'network-only',
  });
  useRefreshWhenMoved(version, refresh);
  if (diff.error) return <p className="error">{errorMessage(diff.error)}</p>;
  const text = diff.data?.agent?.diff;
  if (text === undefined || text === null) return <p className="empty">Loading…</p>;
  return (
    <pre className="diff" aria-label={`Diff of ${path}`}>
      {text.split('\n').map((line, index) => (
        <span key={index} className={diffLineClass(line)}>
          {line}
          {'\n'}
        </span>
      ))}
    </pre>
  );
}

function diffLineClass(line: string): string {
  if (line.startsWith('+++') || line.startsWith('---') || line.startsWith('diff ') || line.startsWith('index ')) return 'diff-file';
  if (line.startsWith('@@')) return 'diff-hunk';
  if (line.startsWith('+')) return 'diff-added';
  if (line.startsWith('-')) return 'diff-removed';
  return 'diff-context';
}
