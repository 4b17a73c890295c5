"""Key Vault routes: the keys data plane (vault origins) and ARM management of vaults and managed HSMs."""

from ppcmk_sandbox.arm.common import RESOURCE_GROUP, SUBSCRIPTION, arm_route
from ppcmk_sandbox.http import Route
from ppcmk_sandbox.keyvault import data, hsm_rbac, mgmt, mgmt_children

NAME = r"(?P<name>[^/]+)"
VERSION = r"(?P<version>[0-9a-f]{32})"

DATA_ROUTES = [
    Route("GET", "/keys/?", data.list_keys, "keyvault"),
    Route("GET", "/deletedkeys/?", data.list_deleted_keys, "keyvault"),
    Route("POST", f"/keys/{NAME}/create", data.create_key, "keyvault", mutating=True),
    Route("POST", f"/keys/{NAME}/rotate", data.rotate_key, "keyvault", mutating=True),
    Route("GET", f"/keys/{NAME}/versions", data.list_versions, "keyvault"),
    Route("GET", f"/keys/{NAME}/rotationpolicy", data.get_rotation_policy, "keyvault"),
    Route("PUT", f"/keys/{NAME}/rotationpolicy", data.set_rotation_policy, "keyvault", mutating=True),
    Route("PUT", f"/keys/{NAME}/?", data.import_key, "keyvault", mutating=True),
    Route("DELETE", f"/keys/{NAME}/?", data.delete_key, "keyvault", mutating=True),
    Route("GET", f"/keys/{NAME}/?(?P<version>[0-9a-f]{{32}})?", data.get_key, "keyvault"),
    Route("PATCH", f"/keys/{NAME}/?(?P<version>[0-9a-f]{{32}})?", data.update_key, "keyvault", mutating=True),
    Route(
        "POST",
        f"/keys/{NAME}/?{VERSION}?/(?P<operation>wrapkey|unwrapkey|encrypt|decrypt)",
        data.crypto_operation,
        "keyvault",
    ),
    Route("GET", f"/deletedkeys/{NAME}", data.get_deleted_key, "keyvault"),
    Route("POST", f"/deletedkeys/{NAME}/recover", data.recover_key, "keyvault", mutating=True),
    Route("DELETE", f"/deletedkeys/{NAME}", data.purge_key, "keyvault", mutating=True),
]

_COLLECTION = r"/providers/Microsoft\.KeyVault/(?P<collection>vaults|managedHSMs)"
_VAULT = RESOURCE_GROUP + _COLLECTION + r"/(?P<name>[^/]+)"
_KEY = _VAULT + r"/keys/(?P<key>[^/]+)"
_DELETED = (
    SUBSCRIPTION
    + r"/providers/Microsoft\.KeyVault/locations/(?P<location>[^/]+)"
    + r"/(?:deletedVaults|deletedManagedHSMs)/(?P<name>[^/]+)"
)

ARM_ROUTES = [
    arm_route("GET", RESOURCE_GROUP + _COLLECTION, mgmt.list_vaults),
    arm_route("GET", SUBSCRIPTION + _COLLECTION, mgmt.list_vaults),
    arm_route("PUT", _VAULT, mgmt.put_vault, mutating=True),
    arm_route("PATCH", _VAULT, mgmt.patch_vault, mutating=True),
    arm_route("GET", _VAULT, mgmt.get_vault),
    arm_route("DELETE", _VAULT, mgmt.delete_vault, mutating=True),
    arm_route(
        "PUT",
        _VAULT + r"/accessPolicies/(?P<operation>add|remove|replace)",
        mgmt_children.update_access_policy,
        mutating=True,
    ),
    arm_route("GET", _VAULT + r"/keys", mgmt_children.list_arm_keys),
    arm_route("GET", _KEY, mgmt_children.get_arm_key),
    arm_route("GET", _KEY + r"/versions", mgmt_children.list_arm_key_versions),
    arm_route("GET", _KEY + r"/versions/(?P<version>[^/]+)", mgmt_children.get_arm_key_version),
    arm_route(
        "GET",
        SUBSCRIPTION + r"/providers/Microsoft\.KeyVault/(?P<collection>deletedVaults|deletedManagedHSMs)",
        mgmt.list_deleted_vaults,
    ),
    arm_route("GET", _DELETED, mgmt.get_deleted_vault),
    arm_route("POST", _DELETED + r"/purge", mgmt.purge_deleted_vault, mutating=True),
]

# The HSM role routes first: their paths start with a key scope (/keys/<name>/providers/...).
ROUTES: list[Route] = hsm_rbac.ROUTES + DATA_ROUTES + ARM_ROUTES
