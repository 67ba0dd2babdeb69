"""Export files in an S3-compatible bucket (django-storages' S3Storage), against moto's
S3 server running in this process: jobs store their files through the storage API, and
downloads, previews and deletions read and remove them there."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from exports import services
from exports.models import exports_storage
from tests.exports.rated import export

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

BUCKET = "ranklab-exports"
CREDENTIALS = {"access_key": "testing", "secret_key": "testing", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint, settings):
    """A fresh bucket, and STORAGES["exports"] as EXPORT_STORAGE=s3 configures it."""
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "location": "prod",
                "endpoint_url": s3_endpoint,
                "default_acl": None,
                "file_overwrite": False,
                **CREDENTIALS,
            },
        },
    }
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def stored_objects(client) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {
        item["Key"]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        for item in listed
    }


@pytest.mark.django_db
@pytest.mark.parametrize("container", ["jsonl", "parquet"])
def test_export_job_stores_its_files_in_the_bucket(bucket, rated, lead, container):
    job = export(rated, lead, container=container, params={"test_fraction": 0.5, "seed": 3})

    objects = stored_objects(bucket)
    names = {job.file.name, job.splits["train"]["file"], job.splits["test"]["file"]}
    assert set(objects) == {f"prod/{name}" for name in names}
    combined = objects[f"prod/{job.file.name}"]
    assert hashlib.sha256(combined).hexdigest() == job.sha256
    assert len(combined) == job.size_bytes
    handle, _ = services.export_file_open(job=job, split=None)
    with handle:
        assert handle.read() == combined


@pytest.mark.django_db
def test_the_same_export_from_the_bucket_and_from_a_folder_is_the_same_file(
    bucket, rated, lead, settings, tmp_path
):
    in_bucket = export(rated, lead)
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "local")},
        },
    }
    in_folder = export(rated, lead)
    assert in_bucket.sha256 == in_folder.sha256
    assert (tmp_path / "local" / in_folder.file.name).exists()


@pytest.mark.django_db
def test_preview_reads_the_first_rows_from_the_bucket(bucket, rated, lead):
    job = export(rated, lead)
    rows = services.export_preview(job=job, limit=2)
    assert len(rows) == 2
    assert {"prompt", "chosen", "rejected"} <= set(rows[0])


@pytest.mark.django_db
def test_deleting_the_files_removes_them_from_the_bucket(
    bucket, rated, lead, django_capture_on_commit_callbacks
):
    job = export(rated, lead)
    assert job.file.name and exports_storage().exists(job.file.name)
    with django_capture_on_commit_callbacks(execute=True):
        services.export_job_delete_file(job=job, deleted_by=lead)
    assert stored_objects(bucket) == {}


@pytest.mark.django_db
def test_a_file_missing_from_the_bucket_is_a_410_not_a_500(bucket, rated, lead):
    job = export(rated, lead)
    bucket.delete_object(Bucket=BUCKET, Key=f"prod/{job.file.name}")
    with pytest.raises(services.FileMissing):
        services.export_file_open(job=job, split=None)
