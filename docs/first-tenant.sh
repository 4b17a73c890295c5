#!/usr/bin/env bash
# The commands of docs/FIRST-TENANT.md, step by step: the identities ppcmk runs as, each with the least
# privileges of docs/AZURE.md (a test keeps the two equal), the approvals app, and the first read-only
# contact. Read the guide first; run this as an admin who may create app registrations and grant roles
# (Owner or User Access Administrator on the vault and the policy's resource group), after `az login`.
# Run it again and it finds the apps an earlier run created (each run adds a certificate to them).
set -euo pipefail

# --- step 1: your tenant, vault and policy (edit these) ---
TENANT_ID=$(az account show --query tenantId -o tsv)
SUBSCRIPTION_ID=$(az account show --query id -o tsv)
VAULT_RG="rg-cmk"  # the resource group of the key vault
VAULT_ID="/subscriptions/$SUBSCRIPTION_ID/resourceGroups/$VAULT_RG/providers/Microsoft.KeyVault/vaults"
VAULT_ID="$VAULT_ID/kv-cmk-prod"  # the vault's name
POLICY_RG="rg-cmk"  # the resource group the enterprise policy is (or will be) in
POLICY_RG_ID="/subscriptions/$SUBSCRIPTION_ID/resourceGroups/$POLICY_RG"
PEM_DIR="$PWD/ppcmk-certificates"  # written here; copy them to /etc/ppcmk on each worker (step 9)

# --- step 2: the three identities, each a service principal with a certificate; the provider ---
az provider register --namespace Microsoft.PowerPlatform --subscription "$SUBSCRIPTION_ID"
identity() {  # the app id of the app registration named $1, created with its service principal if new
  local app
  app=$(az ad app list --display-name "$1" --query "[0].appId" -o tsv)
  if [ -z "$app" ]; then
    app=$(az ad app create --display-name "$1" --sign-in-audience AzureADMyOrg --query appId -o tsv)
    az ad sp create --id "$app" -o none
  fi
  echo "$app"
}
certificate() {  # a new certificate for app $1, its PEM (private key and certificate) written to $2
  local pem
  pem=$(az ad app credential reset --id "$1" --create-cert --append \
    --query fileWithCertAndPrivateKey -o tsv)
  mkdir -p "$PEM_DIR" && mv "$pem" "$2" && chmod 600 "$2"
}
KV_HALF_APP=$(identity "ppcmk Key Vault half")
PP_HALF_APP=$(identity "ppcmk Power Platform half")
RUNBOOK_APP=$(identity "ppcmk runbook")
certificate "$KV_HALF_APP" "$PEM_DIR/kv-half.pem"
certificate "$PP_HALF_APP" "$PEM_DIR/pp-half.pem"
certificate "$RUNBOOK_APP" "$PEM_DIR/runbook.pem"
KV_HALF=$(az ad sp show --id "$KV_HALF_APP" --query id -o tsv)
RUNBOOK=$(az ad sp show --id "$RUNBOOK_APP" --query id -o tsv)

# --- step 3: the Key Vault half: Key Vault rights only ---
grant() {  # Azure role $2 at scope $3 to the service principal with object id $1
  az role assignment create --assignee-object-id "$1" --assignee-principal-type ServicePrincipal \
    --role "$2" --scope "$3" -o none
}
grant "$KV_HALF" "Key Vault Crypto Officer" "$VAULT_ID"
grant "$KV_HALF" "User Access Administrator" "$VAULT_ID"
grant "$KV_HALF" "Contributor" "$POLICY_RG_ID"
grant "$KV_HALF" "User Access Administrator" "$POLICY_RG_ID"

# --- step 4: the runbook identity: reads everything, rotates the key, reverts (unlink, hold tags) ---
grant "$RUNBOOK" "Key Vault Crypto Officer" "$VAULT_ID"
grant "$RUNBOOK" "Reader" "$VAULT_ID"
grant "$RUNBOOK" "Contributor" "$POLICY_RG_ID"

# --- step 5: who may read the directory (names of people, the approver checks): User.Read.All ---
GRAPH=00000003-0000-0000-c000-000000000000
USER_READ_ALL=df021288-bdef-4463-88db-98f22de89214  # Microsoft Graph's application role User.Read.All
for app in "$KV_HALF_APP" "$RUNBOOK_APP"; do
  az ad app permission add --id "$app" --api "$GRAPH" --api-permissions "$USER_READ_ALL=Role" -o none
  az ad app permission admin-consent --id "$app"
done

# --- step 6: the Power Platform half and the runbook identity: Power Platform admin management apps ---
# (as a Power Platform administrator; `pac admin application register --application-id ID` does the same)
BAP="https://api.bap.microsoft.com/providers/Microsoft.BusinessAppPlatform"
for app in "$PP_HALF_APP" "$RUNBOOK_APP"; do
  az rest --method put --resource "https://service.powerapps.com/" \
    --url "$BAP/adminApplications/$app?api-version=2020-10-01"
done

# --- step 7: the approvals app: one delegated scope, Approve, and no API; the Azure CLI pre-authorized
AZURE_CLI=04b07795-8ddb-461a-bbee-02f9e1bf7b46
APPROVALS_APP=$(identity "ppcmk approvals")
az ad app update --id "$APPROVALS_APP" --identifier-uris "api://$APPROVALS_APP"
SCOPE_ID=$(az ad app show --id "$APPROVALS_APP" --query "api.oauth2PermissionScopes[0].id" -o tsv)
SCOPE_ID=${SCOPE_ID:-$(python3 -c 'import uuid; print(uuid.uuid4())')}
az ad app update --id "$APPROVALS_APP" --set "api={\"requestedAccessTokenVersion\": 2,
  \"oauth2PermissionScopes\": [{\"id\": \"$SCOPE_ID\", \"value\": \"Approve\", \"type\": \"User\",
  \"isEnabled\": true, \"adminConsentDisplayName\": \"Approve ppcmk plans\",
  \"adminConsentDescription\": \"Prove who answers a ppcmk approval\",
  \"userConsentDisplayName\": \"Approve ppcmk plans\",
  \"userConsentDescription\": \"Prove who you are when you answer a ppcmk approval\"}]}"
az ad app update --id "$APPROVALS_APP" --set "api.preAuthorizedApplications=[{\"appId\": \"$AZURE_CLI\",
  \"delegatedPermissionIds\": [\"$SCOPE_ID\"]}]"

# --- step 8: what goes into the blocks (docs/first-tenant-blocks.yaml) ---
cat <<EOF
tenant_id:        $TENANT_ID
subscription_id:  $SUBSCRIPTION_ID
kv-admin:         client_id $KV_HALF_APP, certificate_path /etc/ppcmk/kv-half.pem
pp-admin:         client_id $PP_HALF_APP, certificate_path /etc/ppcmk/pp-half.pem
runbook:          client_id $RUNBOOK_APP, certificate_path /etc/ppcmk/runbook.pem
pp_admin:         $(az ad sp show --id "$PP_HALF_APP" --query id -o tsv) (the Power Platform half)
ppcmk-approvals:  app_id $APPROVALS_APP, app_id_uri api://$APPROVALS_APP, scope Approve
certificates:     $PEM_DIR/*.pem, to copy to /etc/ppcmk on each worker (chmod 600, the worker's user)
EOF
