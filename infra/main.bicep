// azft infrastructure: one resource-group deployment.
//
//   az deployment group what-if -g <resource-group> -f infra/main.bicep -p infra/main.parameters.json
//   az deployment group create  -g <resource-group> -f infra/main.bicep -p infra/main.parameters.json
//
// Deploys an Azure AI hub workspace (with its storage account, key vault, container registry and application
// insights), a project workspace in that hub where jobs are submitted, the GPU clusters the examples use (scaling to
// zero), a CI identity (GitHub OIDC, no secret) and a compute identity with exactly the roles azft needs, a monthly
// budget with alerts, and an optional managed network. See infra/README.md for permissions, cost and tear-down.

targetScope = 'resourceGroup'

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Short prefix for resource names: lower-case letters and digits only (the storage account name is built from it).')
@minLength(3)
@maxLength(10)
param prefix string = 'azft'

@description('Suffix that makes the global names (storage, key vault, registry) unique. Change it to redeploy next to a deleted deployment whose key vault is still soft-deleted (see infra/README.md).')
@minLength(3)
@maxLength(13)
param nameSuffix string = uniqueString(resourceGroup().id, prefix)

@description('Name of the single-node GPU cluster. examples/phi3-mini.yaml uses gpu-a100.')
param clusterName string = 'gpu-a100'

@description('GPU VM size of that cluster (Standard_NC24ads_A100_v4: one A100 80 GB, the size the examples plan for).')
param gpuVmSize string = 'Standard_NC24ads_A100_v4'

@description('Most nodes the cluster may scale to. It scales back to 0 when idle.')
@minValue(1)
@maxValue(16)
param gpuMaxNodes int = 1

@description('Also deploy the multi-node cluster examples/phi3-medium-maap-zero3.yaml uses (gpu-a100-x4: 4 GPUs per node).')
param deployMultiNodeCluster bool = false

@description('Name of the multi-node cluster.')
param multiNodeClusterName string = 'gpu-a100-x4'

@description('VM size of the multi-node cluster (Standard_NC96ads_A100_v4: four A100 80 GB per node).')
param multiNodeVmSize string = 'Standard_NC96ads_A100_v4'

@description('Most nodes of the multi-node cluster.')
@minValue(1)
@maxValue(16)
param multiNodeMaxNodes int = 2

@description('Use low-priority (spot) nodes: much cheaper, can be preempted.')
param gpuLowPriority bool = false

@description('Seconds an idle node is kept before the cluster scales down.')
@minValue(60)
param gpuIdleSecondsBeforeScaleDown int = 120

@description('Let the CI identity create and delete compute (AzureML Compute Operator). Off: CI submits only to the clusters this template deploys, and specs keep compute.create_cluster false.')
param ciMayCreateClusters bool = false

@description('GitHub repository allowed to sign in with OIDC, as owner/name.')
param githubRepository string

@description('Which workflows of that repository may sign in: the part of the OIDC subject after "repo:<owner/name>:".')
param githubSubject string = 'ref:refs/heads/main'

@description('Key vault purge protection. On: a deleted vault (and the name) is held for softDeleteRetentionInDays; redeploying needs a new nameSuffix. Off: the name can be purged and reused at once.')
param keyVaultPurgeProtection bool = true

@description('Outbound network isolation of the hub and its computes. AllowOnlyApprovedOutbound allows only Azure ML\'s required rules plus the package hosts the component environments install from (and the Hugging Face hub when allowHuggingFaceHub).')
@allowed([
  'Disabled'
  'AllowInternetOutbound'
  'AllowOnlyApprovedOutbound'
])
param managedNetwork string = 'Disabled'

@description('With AllowOnlyApprovedOutbound: also allow the Hugging Face hub (only needed when a spec names a hub model id; maap trains from the registry asset otherwise).')
param allowHuggingFaceHub bool = false

@description('Monthly cost budget for this resource group in the billing currency; 0 deploys no budget.')
@minValue(0)
param monthlyBudget int = 500

@description('Alert when actual spend passes this percentage of the budget (a forecast alert fires at 100%).')
@minValue(1)
@maxValue(1000)
param budgetAlertThreshold int = 80

@description('E-mail addresses the budget alerts go to (through an action group). The resource group\'s Owners are always notified.')
param budgetAlertEmails array = []

@description('First day of the budget period (the first of a month, yyyy-MM-dd).')
param budgetStartDate string = utcNow('yyyy-MM-01')

@description('Tags applied to every resource.')
param tags object = {
  project: 'azft'
}

var names = {
  storage: toLower(take('${prefix}st${nameSuffix}', 24))
  keyVault: take('${prefix}-kv-${nameSuffix}', 24)
  registry: take('${prefix}acr${nameSuffix}', 50)
  logs: '${prefix}-logs-${nameSuffix}'
  insights: '${prefix}-appi-${nameSuffix}'
  ciIdentity: '${prefix}-ci-${nameSuffix}'
  computeIdentity: '${prefix}-compute-${nameSuffix}'
  hub: '${prefix}-hub-${nameSuffix}'
  project: '${prefix}-project'
  actionGroup: '${prefix}-budget-${nameSuffix}'
}

// Built-in role definition ids. Source: Azure built-in roles (learn.microsoft.com/azure/role-based-access-control/built-in-roles);
// the actions each grants are in azft/azure/roles.py, which tests/assets/test_assets_roles.py checks this file against.
var roles = {
  azureMLDataScientist: 'f6c7c914-8db3-469d-8ca1-694a8f32e121'
  azureMLComputeOperator: 'e503ece1-11d0-4e8e-8e2c-7a6c3bf38815'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
}

// Hosts the component environments install from (conda-forge and PyPI), from Azure ML's list of recommended
// outbound rules (articles/machine-learning/includes/recommended-network-outbound.md in MicrosoftDocs/azure-ai-docs).
var packageHosts = [
  '*.anaconda.org'
  'pypi.org'
  'files.pythonhosted.org'
]
// The Hugging Face hub: huggingface.co and cdn-lfs.huggingface.co (Azure ML's managed-network article, "Use
// HuggingFace models"); *.hf.co is a guess at the hub's newer download hosts, labelled as such.
var huggingFaceHosts = [
  'huggingface.co'
  'cdn-lfs.huggingface.co'
  '*.hf.co'
]
var approvedHosts = managedNetwork == 'AllowOnlyApprovedOutbound' ? concat(packageHosts, allowHuggingFaceHub ? huggingFaceHosts : []) : []

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: names.logs
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: names.insights
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:Jobs read data from GitHub-hosted runners and serverless compute without fixed IPs; access needs Entra ID (shared keys are off), and a private-network variant needs a VNet this template does not own.
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: the data plane must be reachable from CI runners; every request is authenticated with Entra ID.
  // checkov:skip=CKV_AZURE_43:The name is computed (lower-cased prefix of letters/digits + 'st' + uniqueString, cut to 24 characters), so it always follows the naming rules; the check cannot evaluate expressions.
  // checkov:skip=CKV_AZURE_206:Training data and models are reproducible from the source repository and data owners' copies; LRS keeps the idle cost minimal.
  name: names.storage
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109:The workspace and CI reach the vault over the public endpoint with Entra ID and RBAC; a firewall allow-list needs fixed client IPs, which GitHub-hosted runners do not have.
  // checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109.
  // checkov:skip=CKV_AZURE_42:Soft delete is always on; purge protection is the keyVaultPurgeProtection parameter (on by default), off only for short-lived deployments that must reuse their names (infra/README.md).
  // checkov:skip=CKV_AZURE_110:Same reason as CKV_AZURE_42: purge protection is a parameter, on by default.
  name: names.keyVault
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: keyVaultPurgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  // checkov:skip=CKV_AZURE_139:Azure ML builds job images on serverless build agents without fixed IPs; pulls need Entra ID (admin user off).
  // checkov:skip=CKV_AZURE_163:Vulnerability scanning is Microsoft Defender for Containers, a subscription-level plan with its own cost; enable it there.
  // checkov:skip=CKV_AZURE_166:Quarantine needs the Premium SKU; only Azure ML's own environment builds push images.
  // checkov:skip=CKV_AZURE_233:Zone redundancy needs the Premium SKU.
  name: names.registry
  location: location
  tags: tags
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

// Two identities: the CI identity signs in from GitHub Actions (OIDC, no secret) and submits; the compute identity is
// what the cluster's jobs run as (read data, write outputs, pull images, register the model).
resource ciIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.ciIdentity
  location: location
  tags: tags
}

resource computeIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.computeIdentity
  location: location
  tags: tags
}

resource githubFederation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: ciIdentity
  name: 'github-actions'
  properties: {
    issuer: 'https://token.actions.githubusercontent.com'
    subject: 'repo:${githubRepository}:${githubSubject}'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource hub 'Microsoft.MachineLearningServices/workspaces@2024-10-01' = {
  // checkov:skip=CKV_AZURE_243:Jobs are submitted from GitHub Actions and developer machines over the public endpoint with Entra ID; a private endpoint needs a VNet and private DNS zones that this template does not own.
  name: names.hub
  location: location
  tags: tags
  kind: 'Hub'
  identity: {
    type: 'SystemAssigned'
  }
  sku: {
    name: 'Basic'
    tier: 'Basic'
  }
  properties: {
    friendlyName: '${prefix} hub'
    storageAccount: storage.id
    keyVault: keyVault.id
    containerRegistry: registry.id
    applicationInsights: insights.id
    systemDatastoresAuthMode: 'identity'
    publicNetworkAccess: 'Enabled'
    v1LegacyMode: false
    managedNetwork: {
      isolationMode: managedNetwork
    }
  }
}

// With AllowOnlyApprovedOutbound, Azure adds the required rules itself (its service tags and private endpoints to
// this storage, vault and registry); these FQDN rules are what azft's environments add. FQDN rules run on an Azure
// Firewall that Azure creates and bills (see infra/README.md).
resource outboundRules 'Microsoft.MachineLearningServices/workspaces/outboundRules@2024-10-01' = [for host in approvedHosts: {
  parent: hub
  name: 'azft-${replace(replace(host, '*.', 'any-'), '.', '-')}'
  properties: {
    type: 'FQDN'
    category: 'UserDefined'
    destination: host
  }
}]

resource project 'Microsoft.MachineLearningServices/workspaces@2024-10-01' = {
  // checkov:skip=CKV_AZURE_243:Same reason as for the hub.
  name: names.project
  location: location
  tags: tags
  kind: 'Project'
  identity: {
    type: 'SystemAssigned'
  }
  sku: {
    name: 'Basic'
    tier: 'Basic'
  }
  properties: {
    friendlyName: '${prefix} project'
    hubResourceId: hub.id
    publicNetworkAccess: 'Enabled'
  }
}

// Compute lives in the hub and is shared by its projects. minNodeCount 0: no node, no charge, while idle.
var clusters = concat([
  {
    name: clusterName
    vmSize: gpuVmSize
    maxNodes: gpuMaxNodes
  }
], deployMultiNodeCluster ? [
  {
    name: multiNodeClusterName
    vmSize: multiNodeVmSize
    maxNodes: multiNodeMaxNodes
  }
] : [])

resource cluster 'Microsoft.MachineLearningServices/workspaces/computes@2024-10-01' = [for c in clusters: {
  parent: hub
  name: c.name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${computeIdentity.id}': {}
    }
  }
  properties: {
    computeType: 'AmlCompute'
    disableLocalAuth: true
    description: 'GPU cluster for azft fine-tuning; scales to zero when idle.'
    properties: {
      vmSize: c.vmSize
      vmPriority: gpuLowPriority ? 'LowPriority' : 'Dedicated'
      osType: 'Linux'
      remoteLoginPortPublicAccess: 'Disabled'
      scaleSettings: {
        minNodeCount: 0
        maxNodeCount: c.maxNodes
        nodeIdleTimeBeforeScaleDown: 'PT${gpuIdleSecondsBeforeScaleDown}S'
      }
    }
  }
}]

// Role assignments: exactly the roles azft/azure/roles.py derives for each identity (docs/roles.md explains each).
// CI identity, on the hub and the project: AzureML Data Scientist (the workspace, jobs, components, code and data
// assets, models, endpoints; not compute); AzureML Compute Operator only when ciMayCreateClusters; Storage Blob Data
// Contributor on the storage account (data upload).
var workspaceScopes = [
  'hub'
  'project'
]
var ciWorkspaceRoles = concat([
  roles.azureMLDataScientist
], ciMayCreateClusters ? [
  roles.azureMLComputeOperator
] : [])

resource ciHubRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in ciWorkspaceRoles: {
  name: guid(hub.id, ciIdentity.id, role)
  scope: hub
  properties: {
    principalId: ciIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

resource ciProjectRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in ciWorkspaceRoles: {
  name: guid(project.id, ciIdentity.id, role)
  scope: project
  properties: {
    principalId: ciIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

resource ciStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, ciIdentity.id, roles.storageBlobDataContributor)
  scope: storage
  properties: {
    principalId: ciIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

// Compute identity: read training data and write outputs, pull job images, register the fine-tuned model
// (components/register_model signs in as this identity: AzureML Data Scientist on the project).
resource computeStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, computeIdentity.id, roles.storageBlobDataContributor)
  scope: storage
  properties: {
    principalId: computeIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

resource computeRegistryPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, computeIdentity.id, roles.acrPull)
  scope: registry
  properties: {
    principalId: computeIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)
  }
}

resource computeProject 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(project.id, computeIdentity.id, roles.azureMLDataScientist)
  scope: project
  properties: {
    principalId: computeIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.azureMLDataScientist)
  }
}

// The hub's own identity reads and writes its storage with Entra ID (systemDatastoresAuthMode 'identity'). Serverless
// fine-tuning ("Models as a service") uses the hub's identity for this, not the project's: the project's identity
// needs no storage role (Microsoft Foundry, "Disable shared-key access for your hub's storage account", table
// "Scenarios for hub storage account role assignments", MicrosoftDocs/azure-ai-docs
// articles/ai-foundry/how-to/disable-local-auth.md).
resource hubStorageBlobData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, hub.id, roles.storageBlobDataContributor)
  scope: storage
  properties: {
    principalId: hub.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

// Cost guard: a monthly budget on this resource group with an actual-spend alert and a forecast alert.
resource budgetActionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (monthlyBudget > 0 && !empty(budgetAlertEmails)) {
  name: names.actionGroup
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'azftbudget'
    enabled: true
    emailReceivers: [for (email, i) in budgetAlertEmails: {
      name: 'budget-${i}'
      emailAddress: email
      useCommonAlertSchema: true
    }]
  }
}

resource budget 'Microsoft.Consumption/budgets@2023-11-01' = if (monthlyBudget > 0) {
  name: '${prefix}-monthly'
  properties: {
    category: 'Cost'
    amount: monthlyBudget
    timeGrain: 'Monthly'
    timePeriod: {
      startDate: budgetStartDate
    }
    notifications: {
      actual: {
        enabled: true
        operator: 'GreaterThan'
        threshold: budgetAlertThreshold
        thresholdType: 'Actual'
        contactRoles: [
          'Owner'
        ]
        contactEmails: budgetAlertEmails
        contactGroups: empty(budgetAlertEmails) ? [] : [
          budgetActionGroup.id
        ]
      }
      forecast: {
        enabled: true
        operator: 'GreaterThan'
        threshold: 100
        thresholdType: 'Forecasted'
        contactRoles: [
          'Owner'
        ]
        contactEmails: budgetAlertEmails
        contactGroups: empty(budgetAlertEmails) ? [] : [
          budgetActionGroup.id
        ]
      }
    }
  }
}

@description('GitHub repository variable AZURE_CLIENT_ID for azure/login with OIDC (the CI identity).')
output clientId string = ciIdentity.properties.clientId
@description('Client id of the identity the clusters run jobs as.')
output computeIdentityClientId string = computeIdentity.properties.clientId
@description('GitHub repository variable AZURE_TENANT_ID.')
output tenantId string = subscription().tenantId
@description('GitHub repository variable AZURE_SUBSCRIPTION_ID.')
output subscriptionId string = subscription().subscriptionId
output resourceGroup string = resourceGroup().name
output hubName string = hub.name
@description('Workspace azft submits to (spec: azure.workspace).')
output workspaceName string = project.name
@description('Region of the workspace (spec: azure.region).')
output region string = location
@description('Single-node cluster (spec: compute.cluster; examples/phi3-mini.yaml).')
output clusterName string = clusterName
@description('Multi-node cluster, when deployed (examples/phi3-medium-maap-zero3.yaml).')
output multiNodeClusterName string = deployMultiNodeCluster ? multiNodeClusterName : ''
@description('The azure: section of an azft spec for this deployment: paste it into a spec, or print it with az deployment group show (infra/README.md).')
output azftSpec string = 'azure:\n  subscription_id: ${subscription().subscriptionId}\n  resource_group: ${resourceGroup().name}\n  workspace: ${project.name}\n  region: ${location}\ncompute:\n  cluster: ${clusterName}\n  instance_type: ${gpuVmSize}\n'
