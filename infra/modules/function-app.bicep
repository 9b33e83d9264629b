// The Function App on the Flex Consumption plan, Python 3.12, running as the user-assigned
// identity. Every connection is identity-based: no connection string or key is stored.
// The app settings below are the only place app settings are set; tests/infra checks them
// against operations/settings.py.

@description('Name of the Function App (also the first part of its default host name).')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('azd service name in azure.yaml that deploys to this app.')
param serviceName string = 'api'

@description('Name of the user-assigned identity the app runs as.')
param identityName string

@description('Name of the storage account: task hub, host storage, package and results.')
param storageAccountName string

@description('Blob container that holds the deployment package.')
param deploymentContainerName string

@description('Blob container that holds operation results (app setting OPS_RESULTS_CONTAINER).')
param resultsContainerName string

@description('Blob container for the app\'s own records (app setting OPS_STATE_CONTAINER).')
param stateContainerName string

@description('HMAC-SHA256 key that signs webhook deliveries; empty disables callbackUrl.')
@secure()
param webhookSecret string = ''

@description('Application Insights connection string.')
param applicationInsightsConnectionString string

@description('Most instances the plan scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of one instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Python version of the app (Flex Consumption: `az functionapp list-flexconsumption-runtimes -l <region> --runtime python`).')
@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string = '3.12'

@description('Durable Functions backend: azureStorage (the AzureWebJobsStorage__* connection) or durableTaskScheduler.')
@allowed([
  'azureStorage'
  'durableTaskScheduler'
])
param durableBackend string = 'azureStorage'

@description('Endpoint of the Durable Task Scheduler (https://...durabletask.io); empty with azureStorage.')
param durableTaskSchedulerEndpoint string = ''


var useDurableTaskScheduler = durableBackend == 'durableTaskScheduler'

// Every app setting but the backend's own. Host storage stays on AzureWebJobsStorage__* with
// either backend: the Functions host keeps keys, leases and timers there.
var commonAppSettings = {
  // Host storage (and the Durable task hub with azureStorage), identity-based: the host reads every
  // AzureWebJobsStorage__* setting as one connection. Service URIs rather than
  // __accountName so the template works in every Azure cloud.
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  // The app's fallback when no blobServiceUri is set; the same account either way.
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  // Durable Functions needs clientId (not a resource id) to pick the user-assigned identity.
  AzureWebJobsStorage__clientId: identity.properties.clientId
  // DefaultAzureCredential in the app's own code (results blobs) picks this identity.
  AZURE_CLIENT_ID: identity.properties.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  OPS_RESULTS_CONTAINER: resultsContainerName
  OPS_STATE_CONTAINER: stateContainerName
  // Empty when not configured: the app then refuses callbackUrl instead of sending
  // unsigned webhooks.
  OPS_WEBHOOK_SECRET: webhookSecret
}

// The Durable Task Scheduler connection the extension reads when host.json's storageProvider
// is azureManaged with connectionStringName DURABLE_TASK_SCHEDULER_CONNECTION_STRING (the azd
// prepackage hook writes that into the package's host.json). Not a secret: it names the
// endpoint and the identity (ClientID = the user-assigned identity's client id); the scheduler
// accepts Entra ID tokens only. The storageProvider itself is deliberately NOT set here with
// AzureFunctionsJobHost__extensions__durableTask__storageProvider__* overrides: the host
// honours them, but the platform's scale controller reads the durableTask section from the
// package's host.json file (azure-functions-host FunctionsSyncManager.ReadDurableTaskConfig;
// azure-functions-durable-extension issues 2622, 2803), so it would watch Azure Storage queues
// while the work waits in the scheduler and never wake or scale out the durable functions.
var durableTaskSchedulerAppSettings = {
  DURABLE_TASK_SCHEDULER_CONNECTION_STRING: 'Endpoint=${durableTaskSchedulerEndpoint};Authentication=ManagedIdentity;ClientID=${identity.properties.clientId}'
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: identityName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }

  // Flex Consumption takes the runtime from functionAppConfig: FUNCTIONS_WORKER_RUNTIME and
  // FUNCTIONS_EXTENSION_VERSION must not be set here.
  resource appSettings 'config' = {
    name: 'appsettings'
    properties: useDurableTaskScheduler ? union(commonAppSettings, durableTaskSchedulerAppSettings) : commonAppSettings
  }
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output uri string = 'https://${functionApp.properties.defaultHostName}'
