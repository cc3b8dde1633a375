import { Handle, Position, type NodeProps } from "@xyflow/react";
import { branches, type Step } from "./model";

export type StepNodeData = { step: Step; errors: string[]; supported: boolean };

export function StepNode({ data, selected }: NodeProps & { data: StepNodeData }) {
  const { step, errors } = data;
  const outs = branches(step);
  return (
    <div className={`step-node${selected ? " selected" : ""}${errors.length ? " invalid" : ""}`} data-testid={`step-${step.id}`} title={errors.join("\n")}>
      <Handle type="target" position={Position.Top} />
      <div className="kind-label">
        {step.kind ?? "?"}
        {!data.supported && " · not yet supported"}
      </div>
      <div className="id">{step.id}</div>
      {step.title && <div className="muted">{step.title}</div>}
      {errors.length > 0 && (
        <div className="errors" data-testid="step-errors">
          {errors[0]}
          {errors.length > 1 && ` (+${errors.length - 1})`}
        </div>
      )}
      {outs.length ? (
        <>
          <div className="handles-label">
            {outs.map((b) => (
              <span key={b.handle}>{b.handle.startsWith("case-") ? `case ${Number(b.handle.slice(5)) + 1}` : b.label}</span>
            ))}
          </div>
          {outs.map((b, i) => (
            <Handle key={b.handle} id={b.handle} type="source" position={Position.Bottom} style={{ left: `${((i + 1) * 100) / (outs.length + 1)}%` }} />
          ))}
        </>
      ) : (
        <Handle type="source" position={Position.Bottom} />
      )}
    </div>
  );
}
