// azft infrastructure: one resource-group deployment.
//
//   az deployment group create -g <resource-group> -f infra/main.bicep -p infra/main.parameters.json
//
// Deploys an Azure AI hub workspace (with its storage account, key vault, container registry and application
// insights), a project workspace in that hub where jobs are submitted, a GPU compute cluster that scales to zero,
// and a user-assigned identity used by both the cluster and GitHub Actions (OIDC federated credential, no secret).
// See infra/README.md for what it costs while idle.

targetScope = 'resourceGroup'

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Short prefix for resource names: lower-case letters and digits only (the storage account name is built from it).')
@minLength(3)
@maxLength(10)
param prefix string = 'azft'

@description('GPU VM size of the compute cluster (azft catalog: Phi-3-mini needs an A100 SKU).')
param gpuVmSize string = 'Standard_NC24ads_A100_v4'

@description('Most nodes the cluster may scale to. It scales back to 0 when idle.')
@minValue(1)
@maxValue(16)
param gpuMaxNodes int = 1

@description('Use low-priority (spot) nodes: much cheaper, can be preempted.')
param gpuLowPriority bool = false

@description('Seconds an idle node is kept before the cluster scales down.')
@minValue(60)
param gpuIdleSecondsBeforeScaleDown int = 120

@description('GitHub repository allowed to sign in with OIDC, as owner/name.')
param githubRepository string

@description('Which workflows of that repository may sign in: the part of the OIDC subject after "repo:<owner/name>:".')
param githubSubject string = 'ref:refs/heads/main'

@description('Tags applied to every resource.')
param tags object = {
  project: 'azft'
}

var suffix = uniqueString(resourceGroup().id, prefix)
var names = {
  storage: toLower(take('${prefix}st${suffix}', 24))
  keyVault: take('${prefix}-kv-${suffix}', 24)
  registry: take('${prefix}acr${suffix}', 50)
  logs: '${prefix}-logs-${suffix}'
  insights: '${prefix}-appi-${suffix}'
  identity: '${prefix}-id-${suffix}'
  hub: '${prefix}-hub-${suffix}'
  project: '${prefix}-project'
  cluster: 'gpu-cluster'
}

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  azureMLDataScientist: 'f6c7c914-8db3-469d-8ca1-694a8f32e121'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}

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
    enablePurgeProtection: true
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

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.identity
  location: location
  tags: tags
}

resource githubFederation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: identity
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
  }
}

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
resource cluster 'Microsoft.MachineLearningServices/workspaces/computes@2024-10-01' = {
  parent: hub
  name: names.cluster
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    computeType: 'AmlCompute'
    disableLocalAuth: true
    description: 'GPU cluster for azft fine-tuning; scales to zero when idle.'
    properties: {
      vmSize: gpuVmSize
      vmPriority: gpuLowPriority ? 'LowPriority' : 'Dedicated'
      osType: 'Linux'
      remoteLoginPortPublicAccess: 'Disabled'
      scaleSettings: {
        minNodeCount: 0
        maxNodeCount: gpuMaxNodes
        nodeIdleTimeBeforeScaleDown: 'PT${gpuIdleSecondsBeforeScaleDown}S'
      }
    }
  }
}

// Least privilege for the one identity CI and the cluster share: submit jobs and register models in the
// workspaces (not manage them), read/write blobs in the workspace storage (data upload, job outputs), pull job
// images, read the workspace's secrets. No Owner, Contributor or role-assignment rights.
resource hubDataScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hub.id, identity.id, roles.azureMLDataScientist)
  scope: hub
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.azureMLDataScientist)
  }
}

resource projectDataScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(project.id, identity.id, roles.azureMLDataScientist)
  scope: project
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.azureMLDataScientist)
  }
}

resource storageBlobData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageBlobDataContributor)
  scope: storage
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

resource registryPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, identity.id, roles.acrPull)
  scope: registry
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)
  }
}

resource vaultSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, identity.id, roles.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

// The hub's own identity reads and writes its storage with Entra ID (systemDatastoresAuthMode 'identity').
resource hubStorageBlobData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, hub.id, roles.storageBlobDataContributor)
  scope: storage
  properties: {
    principalId: hub.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

@description('GitHub repository variable AZURE_CLIENT_ID for azure/login with OIDC.')
output clientId string = identity.properties.clientId
@description('GitHub repository variable AZURE_TENANT_ID.')
output tenantId string = subscription().tenantId
@description('GitHub repository variable AZURE_SUBSCRIPTION_ID.')
output subscriptionId string = subscription().subscriptionId
output resourceGroup string = resourceGroup().name
output hubName string = hub.name
@description('Workspace azft submits to (spec: workspace.name).')
output workspaceName string = project.name
@description('Compute cluster name (spec: compute.cluster; pipelines: inputs.compute).')
output clusterName string = cluster.name
