import { defaults, type SecretBindingFile } from '../../api/v1alpha1/index.ts';
import type { VersionSelector } from '../../backends/backend.port.ts';
import type { FileTemplate, ValueRef } from '../../delivery/files/file-set.ts';

/** The version a file or item asks for: a pin, an AWS stage, or the latest. */
export function versionSelector(version: string | undefined, versionStage: string | undefined): VersionSelector {
  if (version !== undefined && version !== '') return { kind: 'id', id: version };
  if (versionStage !== undefined && versionStage !== '') return { kind: 'stage', stage: versionStage };
  return { kind: 'latest' };
}

function valueRef(source: { key: string; property?: string; version?: string; versionStage?: string }): ValueRef {
  const ref = { key: source.key, version: versionSelector(source.version, source.versionStage) };
  return source.property === undefined || source.property === '' ? ref : { ...ref, property: source.property };
}

/**
 * The binding's files as templates. The CRD's CEL rules guarantee each file is either single-key
 * (`key`) or formatted (`format` + `items`), so the fallthrough below is unreachable for admitted
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
        items: (file.items ?? []).map((item) => ({ name: item.name, ref: valueRef(item) })),
      };
    }
    if (file.key !== undefined) {
      return { kind: 'single', path: file.path, mode, ref: valueRef({ ...file, key: file.key }) };
    }
    throw new Error(`file ${file.path} has neither key nor format`);
  });
}
