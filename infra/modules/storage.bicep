// The one storage account of the app: the Durable Functions task hub (queues, tables, blob
// leases), the host's own blobs, the Flex Consumption deployment package and the operation
// results. Secure by default: no account keys, no anonymous blobs, TLS 1.2 at least.

@description('Storage account name: 3 to 24 lowercase letters and digits, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Blob containers to create (the deployment package container and the results container).')
param containerNames string[]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    // Every client authenticates with Entra ID; a leaked key cannot exist. User delegation
    // SAS (signed with a key Entra ID vouches for) still work: result links use them.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // Clients download large results straight from the blob endpoint (SAS URLs that
    // GET .../result redirects to), so it must stay reachable from where clients run.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }

  resource blobServices 'blobServices' = {
    name: 'default'

    resource containers 'containers' = [
      for containerName in containerNames: {
        name: containerName
        properties: {
          publicAccess: 'None'
        }
      }
    ]
  }
}

output name string = storage.name
output resourceId string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
