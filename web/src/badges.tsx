import type { AgentStatus, WaitReason } from './api.js';

export function StatusBadge({ status }: { status: AgentStatus }) {
  return <span className={`badge status-${status.toLowerCase()}`}>{status}</span>;
}

/** Which stories wait for a person, at a glance. */
export function WaitingBadge({ waitingFor }: { waitingFor: WaitReason | null }) {
  if (waitingFor === 'APPROVAL') return <span className="badge badge-approval">Needs approval</span>;
  if (waitingFor === 'INPUT') return <span className="badge badge-input">Waiting for a message</span>;
  return null;
}
