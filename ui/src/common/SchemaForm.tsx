// The one JSON-Schema form renderer of the UI (@rjsf/core, kept upstream), styled like the rest.
import Form from "@rjsf/core";
import type { RJSFSchema, UiSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";
import type { ReactNode } from "react";

type Props = {
  schema: RJSFSchema;
  uiSchema?: UiSchema;
  formData?: unknown;
  onChange?: (data: any) => void;
  onSubmit?: (data: any) => void;
  liveValidate?: boolean;
  noValidate?: boolean;
  disabled?: boolean;
  children?: ReactNode;
  idPrefix?: string;
};

export function SchemaForm({ schema, uiSchema, formData, onChange, onSubmit, liveValidate, noValidate, disabled, children, idPrefix }: Props) {
  return (
    <Form
      className="rjsf"
      schema={schema}
      uiSchema={uiSchema}
      formData={formData}
      validator={validator}
      idPrefix={idPrefix}
      liveValidate={liveValidate ? "onChange" : undefined}
      noHtml5Validate
      noValidate={noValidate}
      disabled={disabled}
      showErrorList={false}
      experimental_defaultFormStateBehavior={{ emptyObjectFields: "skipEmptyDefaults", arrayMinItems: { populate: "never" } }}
      onChange={(e) => onChange?.(e.formData)}
      onSubmit={(e) => onSubmit?.(e.formData)}
    >
      {children ?? <></>}
    </Form>
  );
}
