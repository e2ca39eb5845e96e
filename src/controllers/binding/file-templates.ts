import { defaults, type SecretBindingFile } from '../../api/v1alpha1/index.ts';
import type { VersionSelector } from '../../backends/backend.port.ts';
import { defaultBackend, type FileTemplate, type ValueRef } from '../../delivery/files/file-set.ts';

/** The version a file or item asks for: a pin, an AWS stage, or the latest. */
export function versionSelector(version: string | undefined, versionStage: string | undefined): VersionSelector {
  if (version !== undefined && version !== '') return { kind: 'id', id: version };
  if (versionStage !== undefined && versionStage !== '') return { kind: 'stage', stage: versionStage };
  return { kind: 'latest' };
}

interface Source {
  readonly backend?: string | undefined;
  readonly key: string;
  readonly property?: string | undefined;
  readonly version?: string | undefined;
  readonly versionStage?: string | undefined;
}

function valueRef(source: Source, inheritedBackend?: string): ValueRef {
  const backend = nonEmpty(source.backend) ?? nonEmpty(inheritedBackend) ?? defaultBackend;
  const ref: ValueRef = { key: source.key, version: versionSelector(source.version, source.versionStage), ...(backend === defaultBackend ? {} : { backend }) };
  return source.property === undefined || source.property === '' ? ref : { ...ref, property: source.property };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/**
 * The binding's files as templates. The CRD's CEL rules guarantee each file is either single-key
 * (`key`, or `from` with an optional `fallback`) or formatted (`format` + `items`), so the fallthrough below is unreachable for admitted
 * objects; it throws rather than guessing.
 */
export function fileTemplates(files: readonly SecretBindingFile[]): FileTemplate[] {
  return files.map((file): FileTemplate => {
    const mode = file.mode ?? defaults.fileMode;
    if (file.format !== undefined) {
      return {
        kind: 'formatted',
        path: file.path,
        mode,
        format: file.format,
        items: (file.items ?? []).map((item) => ({ name: item.name, ref: valueRef(item, file.backend) })),
      };
    }
    if (file.from !== undefined) {
      const fallback = file.fallback === undefined ? {} : { fallback: valueRef(file.fallback) };
      return { kind: 'single', path: file.path, mode, ref: valueRef(file.from), ...fallback };
    }
    if (file.key !== undefined) {
      return { kind: 'single', path: file.path, mode, ref: valueRef({ ...file, key: file.key }) };
    }
    throw new Error(`file ${file.path} has neither key, from nor format`);
  });
}
