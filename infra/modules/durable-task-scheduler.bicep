// The Durable Task Scheduler backend (deployed only when main.bicep's durableBackend is
// 'durableTaskScheduler'): a scheduler, the task hub the app runs in, and Durable Task Data
// Contributor on that task hub for the app's identity (and, optionally, a developer, who then
// sees the hub in the scheduler's dashboard). Access is Entra ID only: the scheduler has no
// keys, the app connects with its user-assigned identity.
// API version 2025-11-01: the first GA version (Azure/bicep-types-az, microsoft.durabletask).

@description('Name of the scheduler: 3-64 letters, digits and hyphens. Its endpoint is public DNS, so it must be unique in the region.')
@minLength(3)
@maxLength(64)
param name string

@description('Azure region. It must offer Microsoft.DurableTask/schedulers.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Name of the task hub; it must equal the hubName the app\'s host.json declares.')
@minLength(3)
@maxLength(64)
param taskHubName string

@description('Consumption: pay per action dispatched. Dedicated: reserved capacity units billed monthly, for steady high throughput.')
@allowed([
  'Consumption'
  'Dedicated'
])
param skuName string = 'Consumption'

@description('Capacity units of the Dedicated SKU (ignored for Consumption).')
@minValue(1)
param dedicatedCapacity int = 1

@description('Addresses (IPv4, IPv6, CIDR) allowed to reach the scheduler. The resource provider requires the list, and an empty one refuses every caller: Flex Consumption has no fixed outbound address, so the default is open and Entra ID plus the role below are the access control.')
@minLength(1)
param ipAllowlist array = [
  '0.0.0.0/0'
]

@description('Principal (object) id of the identity the Function App runs as.')
param appPrincipalId string

@description('Object id of a developer or CI principal that gets the same role (optional).')
param developerPrincipalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param developerPrincipalType string = 'User'

// Built-in role "Durable Task Data Contributor": every data operation on schedulers and task
// hubs (the extension both schedules and dequeues work, and the management API lists,
// terminates and purges). The narrower Durable Task Worker role does not let the app purge
// expired operations, so it is not enough here.
var durableTaskDataContributor = '0ad04412-c4d5-4796-b79c-f76d14c8d402'

// capacity means something only for Dedicated.
var isDedicated = skuName == 'Dedicated'
var consumptionSku = {
  name: skuName
}
var dedicatedSku = {
  name: skuName
  capacity: dedicatedCapacity
}

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    ipAllowlist: ipAllowlist
    sku: isDedicated ? dedicatedSku : consumptionSku
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = {
  parent: scheduler
  name: taskHubName
}

// Scoped to the task hub, not the scheduler: another app sharing the scheduler gets its own
// hub and cannot read this one's inputs and outputs.
resource appDataAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(taskHub.id, appPrincipalId, durableTaskDataContributor)
  scope: taskHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The dashboard answers 403 without a data role.
resource developerDataAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(developerPrincipalId)) {
  name: guid(taskHub.id, developerPrincipalId, durableTaskDataContributor)
  scope: taskHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributor)
    principalId: developerPrincipalId
    principalType: developerPrincipalType
  }
}

// Read from the resource, never rebuilt from the name: the host name carries a suffix and
// the region (https://<name>-<hash>.<region>.durabletask.io).
output endpoint string = scheduler.properties.endpoint
output taskHubName string = taskHub.name
output dashboardUrl string = taskHub.properties.dashboardUrl
