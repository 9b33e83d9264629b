"""The Azurite fixture really serves blobs (the other e2e tests depend on it)."""

from azure.storage.blob import BlobServiceClient

from tests.support.azurite import Azurite


def test_azurite_round_trips_a_blob(azurite: Azurite) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client("support-check")
    container.create_container()
    container.upload_blob("hello.txt", b"hello")
    assert container.download_blob("hello.txt").readall() == b"hello"
