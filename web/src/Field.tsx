import { type ReactNode, useId } from 'react';

/**
 * A labelled form field. The label points at its control by id rather than wrapping it: a
 * control inside its label adds its value to its accessible name ("Story S-1"), and the
 * dashboard's contract names its fields exactly ("Story", "Prompt", "Agent", …).
 */
export function Field({ label, children }: { label: string; children: (id: string) => ReactNode }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {children(id)}
    </div>
  );
}
