// durable-ops on Azure: `azd up` provisions this, then deploys the app (see docs/deploy.md).
// One resource group holding a storage account (task hub, host storage, deployment package,
// operation results), a Flex Consumption Function App for Python 3.12 running as a
// user-assigned identity, and Application Insights on Log Analytics. No keys anywhere:
// storage has shared-key access disabled and every connection uses the identity.
// With durableBackend = 'durableTaskScheduler', the Durable task hub lives in a Durable Task
// Scheduler instead of the storage account (which still holds host storage, the package and
// the results).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds the resource names.')
param environmentName string

@minLength(1)
@description('Azure region of every resource; it must offer the Flex Consumption plan.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of a developer or CI principal to grant the same storage data roles (optional; azd fills in the signed-in user).')
param principalId string = ''

@description('Kind of principalId.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Blob container for operation results; becomes the OPS_RESULTS_CONTAINER app setting.')
@minLength(3)
@maxLength(63)
param resultsContainerName string = 'operation-results'

@description('Blob container for the app\'s own records (idempotency keys, tombstones, webhook outbox); becomes OPS_STATE_CONTAINER.')
@minLength(3)
@maxLength(63)
param stateContainerName string = 'operation-state'

@description('HMAC-SHA256 key that signs webhook deliveries (OPS_WEBHOOK_SECRET); empty disables callbackUrl. Set it with `azd env set OPS_WEBHOOK_SECRET ...`.')
@secure()
param webhookSecret string = ''

@description('Most instances the Flex Consumption plan scales out to.')
param maximumInstanceCount int = 100

@description('Where Durable Functions keeps orchestration state: azureStorage (queues, tables and blobs of the storage account) or durableTaskScheduler (a managed scheduler; see docs/deploy.md). azd: `azd env set DURABLE_BACKEND durableTaskScheduler`. The package\'s host.json must name the same backend; the azd prepackage hook (infra/hooks/host_json_backend.py) writes it.')
@allowed([
  'azureStorage'
  'durableTaskScheduler'
])
param durableBackend string = 'azureStorage'

@description('Durable Task Scheduler SKU (only with durableBackend = durableTaskScheduler).')
@allowed([
  'Consumption'
  'Dedicated'
])
param durableTaskSchedulerSku string = 'Consumption'

var tags = {
  'azd-env-name': environmentName
}
// Deterministic per subscription, environment and region, so re-running `azd up` updates
// the same resources instead of creating new ones.
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var functionAppName = 'func-ops-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'
var useDurableTaskScheduler = durableBackend == 'durableTaskScheduler'
// The task hub's name: host.json's extensions.durableTask.hubName (tests/infra checks they
// match), so both backends run the same hub name.
var taskHubName = 'DurableOps'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-ops-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'stops${resourceToken}'
    location: location
    tags: tags
    containerNames: [
      deploymentContainerName
      resultsContainerName
      stateContainerName
    ]
  }
}

// The roles the app's identity needs for AzureWebJobsStorage__* and the results container.
module appStorageAccess 'modules/storage-access.bicep' = {
  name: 'app-storage-access'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
  }
}

// Lets the person who ran `azd up` read results and inspect the task hub.
module developerStorageAccess 'modules/storage-access.bicep' = if (!empty(principalId)) {
  name: 'developer-storage-access'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    principalId: principalId
    principalType: principalType
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-ops-${resourceToken}'
    applicationInsightsName: 'appi-ops-${resourceToken}'
    location: location
    tags: tags
    publisherPrincipalId: identity.outputs.principalId
  }
}

module durableTaskScheduler 'modules/durable-task-scheduler.bicep' = if (useDurableTaskScheduler) {
  name: 'durable-task-scheduler'
  scope: rg
  params: {
    name: 'dts-ops-${resourceToken}'
    location: location
    tags: tags
    taskHubName: taskHubName
    skuName: durableTaskSchedulerSku
    appPrincipalId: identity.outputs.principalId
    developerPrincipalId: principalId
    developerPrincipalType: principalType
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-ops-${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityName: identity.outputs.name
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    resultsContainerName: resultsContainerName
    stateContainerName: stateContainerName
    webhookSecret: webhookSecret
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    maximumInstanceCount: maximumInstanceCount
    durableBackend: durableBackend
    durableTaskSchedulerEndpoint: useDurableTaskScheduler ? durableTaskScheduler.outputs.endpoint : ''
  }
  // The host reads its package and task hub as soon as it starts: grant the roles first
  // (the scheduler module holds the task hub role, so it is waited for too).
  dependsOn: [
    appStorageAccess
    durableTaskScheduler
  ]
}

// azd stores these in the environment (`azd env get-values`); docs/deploy.md uses them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output OPS_RESULTS_CONTAINER string = resultsContainerName
output OPS_STATE_CONTAINER string = stateContainerName
output OPS_BASE_URL string = functionApp.outputs.uri
output DURABLE_BACKEND string = durableBackend
output DURABLE_TASK_SCHEDULER_ENDPOINT string = useDurableTaskScheduler ? durableTaskScheduler.outputs.endpoint : ''
output DURABLE_TASK_SCHEDULER_DASHBOARD_URL string = useDurableTaskScheduler ? durableTaskScheduler.outputs.dashboardUrl : ''
